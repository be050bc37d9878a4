from services.compliance_gate.app import service

service.main()
