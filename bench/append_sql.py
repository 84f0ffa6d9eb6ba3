"""What each part of bg_append_events costs, measured in SQL alone (pgbench, no Python).

Each variant is the function as installed from schema.sql with parts cut out, compiled under
another name in the benchmark database, and called the way EventStore.append calls it (one
event per transaction, a stream per client, exact expected version). The plain INSERT of the
same row is the floor; bench/proposed_append.sql is measured beside them. An extra, run with
`python -m bench --only append_sql`.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import asyncpg

from bench import payloads
from bench.harness import Context, Figure, Samples
from bench.pgbench import pgbench_tps

BUDGET_SECONDS = 300
CONCURRENCY = (1, 16, 64)


class Edit(NamedTuple):
    """Replace `start` (through to just before `end`, when given) with `replacement`."""

    start: str
    end: str | None = None
    replacement: str = ""


_NOTIFY = Edit("PERFORM pg_notify('bg_events', '');")
_LOCK = Edit("PERFORM pg_advisory_xact_lock(hashtextextended('bg-stream:' || p_stream_id, 0));")
_DUP_CHECK = Edit("SELECT count(*),", "SELECT coalesce(max(version), 0)")
# The caller's expected version taken on trust: no read of the stream at all.
_VERSION_CHECK = Edit(
    "SELECT coalesce(max(version), 0)", "INSERT INTO events", "v_current := p_expected_version;\n"
)

_GENERIC_PLANS = Edit(
    "LANGUAGE plpgsql", replacement="LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan"
)

SCHEMA, PROPOSAL = "schema.sql", "bench/proposed_append.sql"
PROPOSED_SQL = Path(__file__).with_name("proposed_append.sql")

# name -> (the function it starts from, the edits made to it)
VARIANTS: dict[str, tuple[str, tuple[Edit, ...]]] = {
    "bg_append_events as in schema.sql": (SCHEMA, ()),
    "without NOTIFY": (SCHEMA, (_NOTIFY,)),
    "without the advisory lock": (SCHEMA, (_LOCK,)),
    "without the duplicate-id check": (SCHEMA, (_DUP_CHECK,)),
    "with generic plans": (SCHEMA, (_GENERIC_PLANS,)),
    "insert only (no checks, no NOTIFY)": (SCHEMA, (_NOTIFY, _LOCK, _DUP_CHECK, _VERSION_CHECK)),
    "proposed (bench/proposed_append.sql)": (PROPOSAL, ()),
    "proposed, with generic plans": (PROPOSAL, (_GENERIC_PLANS,)),
}
PLAIN_INSERT = "plain INSERT (no function)"

_CALL = r"""
\set v :v + 1
\set expected :v - 1
SELECT {function}(:tag::text || :client_id, :expected, ARRAY[gen_random_uuid()],
    ARRAY[:type::text], ARRAY[:schema_version::integer], ARRAY[:data::jsonb],
    ARRAY[:metadata::jsonb]);
"""

_INSERT = r"""
\set v :v + 1
INSERT INTO events (stream_id, version, event_id, type, schema_version, data, metadata)
VALUES (:tag::text || :client_id, :v, gen_random_uuid(), :type, :schema_version,
        :data::jsonb, :metadata::jsonb);
"""


def apply(source: str, edit: Edit) -> str:
    """`source` edited; fails when the function no longer has the text, so no variant is stale."""
    if source.count(edit.start) != 1:
        raise ValueError(f"bg_append_events no longer contains {edit.start!r} exactly once")
    start = source.index(edit.start)
    end = start + len(edit.start) if edit.end is None else source.index(edit.end, start)
    return source[:start] + edit.replacement + source[end:]


async def install_variants(dsn: str) -> dict[str, str]:
    """Compile each variant as bench_append_<n>; return variant name -> function name."""
    conn = await asyncpg.connect(dsn)
    try:
        sources = {
            SCHEMA: await conn.fetchval("SELECT pg_get_functiondef('bg_append_events'::regproc)"),
            PROPOSAL: PROPOSED_SQL.read_text(),
        }
        functions: dict[str, str] = {}
        for index, (name, (base, edits)) in enumerate(VARIANTS.items()):
            function = f"bench_append_{index}"
            text = sources[base]
            for edit in edits:
                text = apply(text, edit)
            await conn.execute(text.replace("bg_append_events(", f"{function}(", 1))
            functions[name] = function
        return functions
    finally:
        await conn.close()


def _label(clients: int) -> str:
    return f"{clients} {'client' if clients == 1 else 'clients'}"


async def run(ctx: Context) -> list[Figure]:
    functions = await install_variants(ctx.dsn)
    scripts = {name: _CALL.format(function=f) for name, f in functions.items()}
    scripts[PLAIN_INSERT] = _INSERT
    samples = Samples()
    for run_index in range(ctx.runs):
        await ctx.truncate("events")
        names = list(scripts) if run_index % 2 == 0 else list(reversed(scripts))
        for clients in CONCURRENCY:
            for name in names:
                variables = {
                    "v": "0",
                    "tag": f"{run_index}-{clients}-{list(scripts).index(name)}-",
                    "type": payloads.TYPE,
                    "schema_version": str(payloads.SCHEMA_VERSION),
                    "data": payloads.DATA,
                    "metadata": payloads.METADATA_JSON,
                }
                tps = await pgbench_tps(ctx, scripts[name], clients=clients, variables=variables)
                samples.add(f"{_label(clients)}: {name}", tps)
                ctx.progress(f"append_sql run {run_index + 1}: {clients}: {name}: {tps:,.0f}/s")
    figures = []
    for clients in CONCURRENCY:
        label = _label(clients)
        for name in scripts:
            figures.append(samples.figure(f"{label}: {name}", "events/s"))
        for name in functions:
            ratio = f"{label}: {name} / plain INSERT"
            samples.ratio(ratio, f"{label}: {name}", f"{label}: {PLAIN_INSERT}")
            figures.append(samples.figure(ratio, "ratio"))
    return figures
