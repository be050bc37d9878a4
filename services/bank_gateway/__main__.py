from services.bank_gateway.app import service
from services.bank_gateway.production import guard_bank

guard_bank(service.settings)
service.main()
