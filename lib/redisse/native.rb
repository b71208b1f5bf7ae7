# frozen_string_literal: true

# Loads the native extension, the one place that does. It raises the
# exception classes of redisse/errors, so those come first.
require "rbconfig"
require "redisse/errors"

# Where the extension is, in this order:
# - a platform gem (redisse-x.y.z-x86_64-linux) ships it precompiled, one
#   build per Ruby ABI, in lib/redisse/<major.minor>/ next to this file;
# - the source gem compiles it when it installs (ext/redisse/extconf.rb), and
#   `rake compile` builds it in a checkout: redisse/redisse on the load path.
abi = RUBY_VERSION[/\A\d+\.\d+/]
precompiled = File.join(__dir__, abi, "redisse.#{RbConfig::CONFIG['DLEXT']}")
if File.exist?(precompiled)
  # If it is there but does not load (a C library too old...), Ruby's own
  # message says why, and is what to read.
  require precompiled
else
  begin
    require "redisse/redisse"
  rescue LoadError => e
    raise unless e.path == "redisse/redisse" # found, but did not load: its own message says why

    # A platform gem installed on a Ruby it holds no build for (3.2 between
    # 3.1 and 3.3: RubyGems cannot leave out a version in between).
    held = Dir.glob(File.join(__dir__, "*", "redisse.#{RbConfig::CONFIG['DLEXT']}"))
              .map { |file| File.basename(File.dirname(file)) }.sort
    platform_gem = held.empty? ? "" : "This redisse gem holds builds for Ruby #{held.join(' and ')} only.\n"
    raise LoadError, <<~MESSAGE.chomp, cause: nil
      redisse: no native extension for Ruby #{abi} on #{defined?(Gem::Platform) ? Gem::Platform.local : RUBY_PLATFORM}.
      #{platform_gem}Install the gem that has one:
        - the platform gem, precompiled, needs no Rust (x86_64-linux with glibc 2.34 or newer, Ruby 3.1 or 3.3):
            gem install redisse --platform x86_64-linux
          with Bundler: bundle lock --add-platform x86_64-linux, then bundle install
        - the source gem, for any other platform or Ruby, compiles the extension as it installs,
          with Rust's cargo (https://rustup.rs) and libclang (Debian, Ubuntu: apt-get install libclang-dev):
            gem install redisse --platform ruby
          with Bundler: bundle config set force_ruby_platform true, then bundle install
        - in a checkout of redisse's sources: rake compile
    MESSAGE
  end
end
