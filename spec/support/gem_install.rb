# frozen_string_literal: true

require_relative "commands"
require_relative "../../lib/redisse/version"

# The gems as users install them: the files `rake gems` builds, and the
# environments the specs install them in (a throwaway GEM_HOME, with or
# without Rust on PATH). Loads nothing of the extension, so that it works on
# a machine that has never built it.
module GemInstall
  ROOT = File.expand_path("../..", __dir__)
  RUST_TOOLS = %w[cargo rustc rustup].freeze

  module_function

  # pkg/redisse-VERSION.gem: compiles its extension as it installs.
  def source_gem
    File.join(ROOT, "pkg", "redisse-#{Redisse::VERSION}.gem")
  end

  # The platform gem's: the CPU and OS, x86_64-linux, which Debian 13's
  # x86_64-linux-gnu matches too.
  def platform
    Gem::Platform.new([Gem::Platform.local.cpu, Gem::Platform.local.os])
  end

  # pkg/redisse-VERSION-x86_64-linux.gem: the extension precompiled.
  def platform_gem
    File.join(ROOT, "pkg", "redisse-#{Redisse::VERSION}-#{platform}.gem")
  end

  # Builds both gems with `rake gems` on a machine with Rust; on one without,
  # the gems must have been built elsewhere and copied into pkg/, as they
  # are when REDISSE_PREBUILT_GEMS is set (Debian 13's half of CI tests the
  # gems that the Debian 12 machine built).
  # @return [Array(String, String)] the source gem and the platform gem
  def build_gems
    if rust_on_path? && !ENV["REDISSE_PREBUILT_GEMS"]
      output, status = Commands.run_command("rake", "gems", chdir: ROOT, timeout: 900)
      raise "`rake gems` failed:\n#{output}" unless status.success?
    end
    [source_gem, platform_gem].each do |file|
      next if File.exist?(file)

      raise "#{file} is missing: no Rust here to build it; run `rake gems` on a machine with Rust and copy pkg/ here"
    end
    [source_gem, platform_gem]
  end

  def rust_on_path?(path = ENV.fetch("PATH", ""))
    path.split(File::PATH_SEPARATOR).any? { |dir| File.executable?(File.join(dir, "cargo")) }
  end

  # PATH without the folders that hold a Rust tool (~/.cargo/bin...).
  def path_without_rust
    ENV.fetch("PATH", "").split(File::PATH_SEPARATOR).reject do |dir|
      RUST_TOOLS.any? { |tool| File.exist?(File.join(dir, tool)) }
    end.join(File::PATH_SEPARATOR)
  end

  # The environment of a `gem`, `bundle` or `ruby` that installs into, and
  # loads from, `gem_home` (the machine's own gems, Debian's rack, stay
  # visible), and sees nothing of this checkout or of a Bundler it runs
  # under. With `rust: false`, no Rust either: no cargo on PATH, and HOME is
  # `home` so that no ~/.cargo is found.
  def gem_env(gem_home, rust: true, home: nil)
    env = {
      "GEM_HOME" => gem_home, "GEM_PATH" => [gem_home, *Gem.path].join(File::PATH_SEPARATOR),
      "RUBYLIB" => nil, "RUBYOPT" => nil,
      "BUNDLE_GEMFILE" => nil, "BUNDLE_PATH" => nil, "BUNDLE_BIN_PATH" => nil, "BUNDLER_VERSION" => nil,
      "BUNDLER_SETUP" => nil, "BUNDLE_SILENCE_ROOT_WARNING" => "1"
    }
    return env if rust

    raise ArgumentError, "a HOME without Rust is needed" unless home

    env.merge("PATH" => path_without_rust, "HOME" => home, "CARGO" => nil, "CARGO_HOME" => nil,
              "RUSTUP_HOME" => nil, "RUSTUP_TOOLCHAIN" => nil, "CARGO_TARGET_DIR" => nil)
  end
end
