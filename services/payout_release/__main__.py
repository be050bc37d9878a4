from services.payout_release.app import service

service.main()
