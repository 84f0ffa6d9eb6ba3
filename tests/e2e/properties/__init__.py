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

Every test is marked `slow`. Each runs `BOOKING_GUARD_PROPERTY_EXAMPLES` examples (default 150;
the stateful test runs a fifth as many sequences of five requests), derandomized: about 3 to 11 s
per test on two cores, well under a minute, and the same examples every run. To search longer and
elsewhere, e.g. before a release (about 10 examples a second):

    BOOKING_GUARD_PROPERTY_EXAMPLES=2000 BOOKING_GUARD_PROPERTY_SEED=$RANDOM \
        pytest tests/e2e/properties

(a seed makes the run random but repeatable with the same seed). Hypothesis keeps no example
database (`database=None`): nothing is written into the repository.
"""
