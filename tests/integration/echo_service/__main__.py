from tests.integration.echo_service import build_service

build_service().main()
