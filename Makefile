.PHONY: dev test mailbox bench bench-export build

# Bring up the whole local stack: emulator, resources, functions on 127.0.0.1:9000.
dev:
	dev/bin/dev

# Run everything CI runs: format check, clippy, unit and integration tests (own emulator).
test:
	dev/bin/test

# Print the mail the local emulator received (optionally: make mailbox TO=someone@example.com).
mailbox:
	dev/bin/mailbox $(TO)

# Release builds, sizes, cold start and peak RSS against the floors (figures, not a test).
bench:
	dev/bin/bench

# The deployable build: sam build (cargo-lambda) of every function, x86_64 here (see infra/README.md).
build:
	dev/bin/sam-build

# The export of a person with ~1 GiB of recordings vs a bare multipart upload (figures).
bench-export:
	dev/bin/bench-export
