# syntax=docker/dockerfile:1
#
# The booking-guard service image:
#
#   docker build -t booking-guard .
#   docker run --rm -e DATABASE_URL=postgresql://... -p 8080:8080 booking-guard
#
# The image always needs DATABASE_URL: the embedded PostgreSQL of `make run` is for a developer's
# machine, not for a container (compose.yaml runs PostgreSQL beside it). See docs/containers.md.
# Checked by tests/unit/test_container.py (hadolint, COPY sources, commands, the health check).

# --- builder: the project's wheel, installed with its runtime dependencies into a venv ----------
FROM python:3.12-slim AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
# What the wheel is built from, and nothing else (.dockerignore keeps the rest out of the context).
# README.md is the package's long description (pyproject's `readme`); schema.sql is force-included
# into the wheel as events/schema.sql.
COPY pyproject.toml README.md schema.sql ./
COPY events/ events/
COPY projections/ projections/
COPY service/ service/

# `pip wheel` builds booking-guard's wheel and fetches wheels of its dependencies; the venv gets
# them from /wheels only, so what it holds is exactly what was resolved here (no dev extras: no
# pytest, ruff or mypy).
RUN pip wheel --wheel-dir /wheels . \
    && python -m venv /opt/booking-guard \
    && /opt/booking-guard/bin/pip install --no-index --find-links /wheels booking-guard

# --- runtime: the venv alone, run by a user without privileges -----------------------------------
FROM python:3.12-slim AS runtime

# Listen on every interface of the container (the service's default is 127.0.0.1, right for a
# developer's machine, unreachable from outside a container). JSON log lines on stderr.
ENV PATH=/opt/booking-guard/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    BOOKING_GUARD_HOST=0.0.0.0 \
    BOOKING_GUARD_PORT=8080 \
    BOOKING_GUARD_LOG_FORMAT=json

RUN groupadd --system --gid 10001 booking-guard \
    && useradd --system --uid 10001 --gid booking-guard --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin booking-guard

# The same base image as the builder, so the venv's interpreter link (/usr/local/bin/python3.12)
# resolves here too. Owned by root: the service never writes to its own code.
COPY --from=builder /opt/booking-guard /opt/booking-guard

USER 10001:10001
WORKDIR /tmp

EXPOSE 8080

# Liveness only (/health asks nothing of PostgreSQL): a process that still answers HTTP is not
# restarted because the database is down; /ready is for the load balancer. slim has no curl, so
# Python's urllib asks, on BOOKING_GUARD_PORT if it was changed, past any HTTP_PROXY of the
# environment; an error or an answer of 400 or more raises, and the check exits 1.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.build_opener(u.ProxyHandler({})).open('http://127.0.0.1:' + os.environ.get('BOOKING_GUARD_PORT', '8080') + '/health', timeout=2)"]

ENTRYPOINT ["booking-guard"]
CMD ["serve"]
