# One image for every fleet role: worker, flower, producer (enqueue/sweep/nightly), aggregator.
# Dependencies come from the committed, hash-pinned runtime lockfile (the runtime dependencies'
# closure, pinned exactly as requirements.lock; no dev tools) before the source is copied, so a
# code change does not reinstall them.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    # One BLAS/OpenMP thread per process: prefork pools × threaded BLAS oversubscribe the cores.
    OMP_NUM_THREADS=1 \
    OPENBLAS_NUM_THREADS=1 \
    MKL_NUM_THREADS=1 \
    VECLIB_MAXIMUM_THREADS=1 \
    NUMEXPR_NUM_THREADS=1

WORKDIR /app

RUN groupadd --system --gid 10001 taxview \
    && useradd --system --uid 10001 --gid taxview --home-dir /data --shell /usr/sbin/nologin taxview

COPY requirements-runtime.lock ./
RUN pip install --no-cache-dir --require-hashes --no-deps -r requirements-runtime.lock

COPY pyproject.toml README.md ./
COPY shared ./shared
COPY worker ./worker
COPY producer ./producer
RUN pip install --no-cache-dir --no-deps --no-build-isolation . \
    && mkdir -p /data/out \
    && chown -R taxview:taxview /data

# The user's home and working directory are writable: a command's default output directory
# (./taxview-nightly, a runner's --out) and a tool's cache land there, not in the root-owned /app.
WORKDIR /data
USER 10001:10001

# The default role; compose.yaml sets the command of each service.
CMD ["celery", "-A", "worker.app", "worker", "--loglevel", "INFO"]
