from services.matching.app import service

service.main()
