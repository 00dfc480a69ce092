# The project's image: the code and its locked dependencies, nothing generated (.dockerignore
# keeps .venv/, data/ state, .dagster_home/, .env and caches out of the build context).
# One image serves the code location, the webserver, the daemon and every run container
# (docs/production.md; config/dagster.docker.yaml launches runs from it).
FROM python:3.11-slim

WORKDIR /opt/fine_tuning

# Dependencies first, so that a code change does not reinstall them. --require-hashes and
# --no-deps: exactly the hashed lock, nothing unpinned.
COPY requirements.lock ./
RUN pip install --no-cache-dir --no-deps --require-hashes -r requirements.lock

COPY pyproject.toml README.md dagster.yaml workspace.yaml ./
COPY config ./config
COPY data/sample ./data/sample
COPY local_openai ./local_openai
COPY fine_tuning ./fine_tuning
# setuptools and wheel come from the lock, so the build needs nothing else.
RUN pip install --no-cache-dir --no-deps --no-build-isolation .

# Generated state goes to a volume (config/dagster.docker.yaml mounts one here); the instance
# config is mounted or copied into DAGSTER_HOME by the deployment.
ENV FINE_TUNING_WORKDIR=/opt/fine_tuning/work \
    DAGSTER_HOME=/opt/dagster/home
RUN mkdir -p "$FINE_TUNING_WORKDIR" "$DAGSTER_HOME"

# The code location server, under the location name every workspace uses.
EXPOSE 4000
CMD ["dagster", "api", "grpc", "-m", "fine_tuning", "--location-name", "fine_tuning", "-h", "0.0.0.0", "-p", "4000"]
