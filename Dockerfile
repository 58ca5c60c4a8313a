# radsal: one image for the web app and the saliency worker.
#
# The default PyPI torch wheel for linux/amd64 ships CUDA, so the same image runs the GPU worker
# (with the NVIDIA container runtime) and falls back to CPU anywhere else. For a smaller,
# CPU-only image: docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu .
FROM python:3.11-slim AS base

ARG TORCH_INDEX_URL=""
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    RADSAL_DATA_DIR=/data \
    TQDM_DISABLE=1

# sqlite3: online backups of the embedded database (docs/admin.md); libgomp1: torch CPU threads;
# R with ordinal and lme4: the ordinal mixed model of the analysis (r/clmm.R).
RUN apt-get update \
    && apt-get install -y --no-install-recommends sqlite3 libgomp1 \
       r-base-core r-cran-ordinal r-cran-lme4 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# Dependencies first (cached layer): only pyproject.toml invalidates it.
COPY pyproject.toml README.md ./
RUN if [ -n "$TORCH_INDEX_URL" ]; then \
        pip install --index-url "$TORCH_INDEX_URL" "torch>=2.14.1,<2.15" "torchvision>=0.29.1,<0.30"; \
    fi \
    && mkdir -p app ml \
    && touch app/__init__.py ml/__init__.py \
    && pip install . \
    && pip uninstall -y radsal

COPY alembic.ini ./
COPY migrations ./migrations
COPY app ./app
COPY ml ./ml
COPY templates ./templates
COPY static ./static
COPY r ./r
# Editable install: the package finds templates/, static/ and migrations/ beside it in /app.
RUN pip install --no-deps -e . \
    && useradd --system --uid 10001 --home-dir /app radsal \
    && mkdir -p /data \
    && chown radsal /data

USER radsal
VOLUME ["/data"]
EXPOSE 8000

# Health checks live in docker-compose.yml (the web app answers /healthz; the worker has no port).

# Migrations first (one process, before any uvicorn worker), then the server.
CMD ["sh", "-c", "radsal db upgrade && exec radsal serve --host 0.0.0.0 --port 8000"]
