.PHONY: dev test fuzz mail-preview mailbox sweep staff bench bench-export bench-sweep bench-local bench-e2e build deploy-check chaos redrive

# Bring up the whole local stack: emulator, resources, functions on 127.0.0.1:9000.
dev:
	dev/bin/dev

# Run everything CI runs: format check, clippy, unit and integration tests (own emulator).
test:
	dev/bin/test

# Fuzz the JSON edge, the email parser and the data map loader (libFuzzer, nightly), FUZZ_SECONDS each.
fuzz:
	dev/bin/fuzz

# Write every message the system sends, in English and Dutch, to target/mail/ for review.
mail-preview:
	dev/bin/mail-preview

# Print the mail the local emulator received (optionally: make mailbox TO=someone@example.com).
mailbox:
	dev/bin/mailbox $(TO)

# The fault run: a fresh stack of its own whose emulator fails 30% of the functions' and the pump's
# AWS calls (seeded), 100 requests with faults, then 100 with the pump killed at random too; each
# pass redriven and judged against a run without faults (CHAOS_SEED, CHAOS_FAULTS, CHAOS_REQUESTS).
chaos:
	dev/bin/chaos

# Put what the running local stack gave up on (dead-letter queues, the stream's failure queue)
# back to work.
redrive:
	dev/bin/redrive

# Run the daily sweep once in the local stack (the pump also runs it hourly) and print its result.
sweep:
	dev/bin/sweep

# The staff CLI against the local stack, with the local key of `make dev`: make staff ARGS="list".
staff:
	dev/bin/staff $(ARGS)

# Release builds, sizes, cold start and peak RSS against the floors (figures, not a test).
bench:
	dev/bin/bench

# The deployable build: sam build (cargo-lambda) of every function, x86_64 here (see infra/README.md).
build:
	dev/bin/sam-build

# What `sam deploy` would upload (sam build + sam package into the emulator's S3): each function's
# artifact is its bootstrap and nothing else, for the architecture the deploy declares.
deploy-check:
	dev/bin/deploy-check

# The export of a person with ~1 GiB of recordings vs a bare multipart upload (figures).
bench-export:
	dev/bin/bench-export

# The daily sweep over 10,000 and 100,000 requests with 50 due: index items read and time (figures).
bench-sweep:
	dev/bin/bench-sweep

# A fresh local stack of its own under bursts of access requests: fresh, after 1,000 and after
# 5,000 requests (rates, latencies, and the CPU of the emulator, functions, router and pump).
bench-local:
	dev/bin/bench-local

# The cost of a request: 200 requests (access, deletion, opt-out) end to end with release builds,
# every AWS call metered; per function, per request and per 1,000 requests at list prices (figures).
bench-e2e:
	dev/bin/bench-e2e
