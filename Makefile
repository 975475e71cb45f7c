# The two commands of the README (run, test). Both install what they need on a fresh Debian
# machine. `make fuzz` and `make bench` are for developers; neither is part of `make test`.
.PHONY: run test fuzz bench build clean

run:
	bash scripts/run.sh

test:
	bash scripts/test.sh

# FUZZ_SECONDS=600 make fuzz
fuzz:
	bash scripts/fuzz.sh

bench:
	bash scripts/bench.sh

build:
	swift build

clean:
	rm -rf .build .build-* .run
