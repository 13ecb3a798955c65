# syntax=docker/dockerfile:1
# One image for every boxoffice process: `docker run IMAGE service booking`, `IMAGE init`, `IMAGE health booking`.
# Broker, database and SMTP server are separate containers (compose.yaml); nothing embedded runs in here.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
RUN pip install . && rm -rf /src

# Services run unprivileged; their only state is in PostgreSQL and Kafka.
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin boxoffice
USER boxoffice
WORKDIR /home/boxoffice

# Listen on every interface of the container (the default 127.0.0.1 would be unreachable from outside).
ENV BOXOFFICE_HTTP_HOST=0.0.0.0 \
    BOXOFFICE_DATA_DIR=/home/boxoffice/data
EXPOSE 8000

ENTRYPOINT ["boxoffice"]
CMD ["service", "gateway"]
