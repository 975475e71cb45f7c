# The two commands of the README. Both install what they need on a fresh Debian machine.
.PHONY: run test build clean

run:
	bash scripts/run.sh

test:
	bash scripts/test.sh

build:
	swift build

clean:
	rm -rf .build .run
