# sluice — the two commands: `make run` and `make test`; and for a system:
# `make install` (PREFIX, DESTDIR) and `make deb` (a Debian package).
CARGO ?= cargo
CONF  ?= conf/sluice.conf

PREFIX     ?= /usr/local
DESTDIR    ?=
SBINDIR    ?= $(PREFIX)/sbin
MANDIR     ?= $(PREFIX)/share/man
DOCDIR     ?= $(PREFIX)/share/doc/sluice
SYSCONFDIR ?= /etc
UNITDIR    ?= $(PREFIX)/lib/systemd/system
BIN        ?= $(or $(CARGO_TARGET_DIR),target)/release/sluice

.PHONY: run build test fmt clippy unit integration bench clean install uninstall deb package-test

build:
	$(CARGO) build --release --workspace

run: build
	@mkdir -p run
	./target/release/sluice -c $(CONF) -g "daemon off;"

test:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) test --workspace --profile ci

bench: build
	scripts/bench.sh

# The binary, the man page, the README, a systemd unit and a logrotate file
# pointing at $(SBINDIR), and the default configuration (an existing
# $(SYSCONFDIR)/sluice/sluice.conf is kept; the new one is sluice.conf.new).
install: build
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(DOCDIR) \
		$(DESTDIR)$(SYSCONFDIR)/sluice $(DESTDIR)$(SYSCONFDIR)/logrotate.d $(DESTDIR)$(UNITDIR)
	install -m 755 $(BIN) $(DESTDIR)$(SBINDIR)/sluice
	install -m 644 debian/sluice.8 $(DESTDIR)$(MANDIR)/man8/sluice.8
	install -m 644 README.md $(DESTDIR)$(DOCDIR)/README.md
	sed 's|/usr/sbin/sluice|$(SBINDIR)/sluice|g' debian/sluice.service > $(DESTDIR)$(UNITDIR)/sluice.service
	sed 's|/usr/sbin/sluice|$(SBINDIR)/sluice|g' debian/logrotate > $(DESTDIR)$(SYSCONFDIR)/logrotate.d/sluice
	chmod 644 $(DESTDIR)$(UNITDIR)/sluice.service $(DESTDIR)$(SYSCONFDIR)/logrotate.d/sluice
	if [ -e $(DESTDIR)$(SYSCONFDIR)/sluice/sluice.conf ]; then \
		install -m 644 debian/sluice.conf $(DESTDIR)$(SYSCONFDIR)/sluice/sluice.conf.new; \
	else \
		install -m 644 debian/sluice.conf $(DESTDIR)$(SYSCONFDIR)/sluice/sluice.conf; \
	fi
	@echo "installed; as root: create the user (adduser --system --group sluice)," \
		"then systemctl daemon-reload && systemctl enable --now sluice"

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/sluice $(DESTDIR)$(MANDIR)/man8/sluice.8 \
		$(DESTDIR)$(UNITDIR)/sluice.service $(DESTDIR)$(SYSCONFDIR)/logrotate.d/sluice
	rm -rf $(DESTDIR)$(DOCDIR)

# target/debian/sluice_VERSION_ARCH.deb (needs `cargo install cargo-deb`).
deb:
	command -v cargo-deb >/dev/null || $(CARGO) install cargo-deb
	$(CARGO) deb

# Builds the .deb, installs it (dpkg, as root), runs it as the unit would,
# purges it. Changes the machine: not part of `make test`.
package-test:
	scripts/package-test.sh

clean:
	$(CARGO) clean
