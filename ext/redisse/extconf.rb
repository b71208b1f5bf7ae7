# frozen_string_literal: true

# Writes the Makefile that builds the native extension with cargo.
#
# mkmf's create_makefile expects C sources, and the rb_sys gem that usually
# bridges mkmf and cargo is not a dependency, so the Makefile is written by
# hand. RubyGems runs `make clean`, `make` and `make install`, after loading
# a file that points RbConfig's sitearchdir at a staging directory: the
# `install` target copies the library there, as `redisse/redisse.so`, which
# is what `require "redisse/redisse"` looks for.

require "rbconfig"

root = File.expand_path("../..", __dir__)
# The library cargo writes (libredisse.so, libredisse.dylib) and the name
# Ruby loads extensions by (redisse.so, redisse.bundle).
cargo_library = "libredisse.#{RbConfig::CONFIG['SOEXT']}"
extension = "redisse.#{RbConfig::CONFIG['DLEXT']}"

File.write("Makefile", <<~MAKEFILE)
  ROOT = #{root}
  CARGO ?= cargo
  # Cargo's own setting, to share compiled dependencies between builds.
  TARGET_DIR = #{ENV.fetch("CARGO_TARGET_DIR", File.join(root, "target"))}
  # rb-sys reads RUBY to find the Ruby to build against.
  RUBY = #{RbConfig.ruby}
  sitearchdir = #{RbConfig::CONFIG['sitearchdir']}
  RUBYARCHDIR = $(sitearchdir)/redisse
  EXTENSION = #{extension}

  all: $(EXTENSION)

  # cargo knows when the sources changed, so it always gets to decide.
  $(EXTENSION): FORCE
  \tRUBY="$(RUBY)" "$(CARGO)" build --release -p redisse-ext --manifest-path "$(ROOT)/Cargo.toml" --target-dir "$(TARGET_DIR)"
  \tcp "$(TARGET_DIR)/release/#{cargo_library}" $(EXTENSION)

  install: $(EXTENSION)
  \tmkdir -p "$(DESTDIR)$(RUBYARCHDIR)"
  \tcp $(EXTENSION) "$(DESTDIR)$(RUBYARCHDIR)/$(EXTENSION)"

  clean:
  \trm -f $(EXTENSION)

  FORCE:

  .PHONY: all install clean FORCE
MAKEFILE
