"""Property-based tests of the whole surface: Hypothesis draws valid, odd and broken inbound
bodies (the booking API, Retell function calls, Cal.com webhooks) and Cal.com answers (through
the simulator's `answer` fault), drives the app over HTTP with the simulator behind it, and checks
after every request that

- nothing answers 500, and a 502/503/504 is the documented failure body
  `{"attempt_id", "status": "failed", "reason", "retryable"}` of an attempt whose outcome is in
  the ledger;
- every 4xx that is not an attempt's business outcome is a JSON `{"error", "detail"}` naming the
  problem, and wrote no event;
- no attempt is left without an outcome: every `BookingRequested` has exactly one of
  BookingConfirmed / BookingRejected / BookingFailed / BookingAlreadyHeld on its stream, and no
  idempotency key stays `in_flight`.

Every test is marked `slow`. At default settings each runs `BOOKING_GUARD_PROPERTY_EXAMPLES`
examples (default 150) and stops drawing new ones after `BOOKING_GUARD_PROPERTY_SECONDS` (default
45), so the whole package takes well under a minute per test on two cores. To search longer, e.g.
before a release: `BOOKING_GUARD_PROPERTY_EXAMPLES=2000 BOOKING_GUARD_PROPERTY_SECONDS=1800
pytest tests/e2e/properties`. Set `BOOKING_GUARD_PROPERTY_SEED` to replay one run. Hypothesis
keeps no example database (`database=None`): nothing is written into the repository.
"""
