from services.bank_gateway.app import service

service.main()
