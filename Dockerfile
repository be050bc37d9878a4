# One image for the five services; docker-compose.yml picks the module per service.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# openssl: the compose `certs` step makes the broker's CA and certificate with it.
RUN apt-get update && apt-get install -y --no-install-recommends openssl && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml ./
COPY deploy/kafka/make-certs.sh ./deploy/kafka/make-certs.sh
COPY shared ./shared
COPY services ./services
COPY tools ./tools
# The CLI watches topics, and builds the demo's documents, with the test kit.
COPY testkit ./testkit
RUN pip install . \
    && useradd --system --uid 10001 --no-create-home concord

USER concord
# Overridden per service: python -m services.<name>
CMD ["python", "-m", "shared.admin", "ensure-topics"]
