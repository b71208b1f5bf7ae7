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

# Checked before anything is built: without these the build would fail
# after pages of compiler output, far from the reason. Every missing piece
# is named at once, with what to install.
module RedisseBuildCheck
  module_function

  PLATFORM_GEM = <<~TEXT
    Or install the precompiled gem, which needs none of this: it exists for
    x86_64-linux (glibc 2.34 or newer) and Ruby 3.1:
        gem install redisse --platform x86_64-linux
    (with Bundler: bundle lock --add-platform x86_64-linux, then bundle install).
  TEXT

  # Where clang-sys (through rb-sys and bindgen) looks for libclang, in its
  # order; LIBCLANG_PATH, when set, is the only place it looks.
  LIBCLANG_DIRECTORIES = {
    "linux" => ["/usr/local/llvm*/lib*", "/usr/local/lib*/*/*", "/usr/local/lib*/*", "/usr/local/lib*",
                "/usr/lib*/*/*", "/usr/lib*/*", "/usr/lib*"],
    "darwin" => ["/usr/local/opt/llvm*/lib/llvm*/lib", "/Library/Developer/CommandLineTools/usr/lib",
                 "/Applications/Xcode.app/Contents/Developer/Toolchains/XcodeDefault.xctoolchain/usr/lib",
                 "/usr/local/opt/llvm*/lib"]
  }.freeze

  def run
    problems = [cargo_problem, build_tools_problem, ruby_headers_problem, libclang_problem].compact
    return if problems.empty?

    abort "\nredisse: the native extension cannot be built. This is the source gem: it compiles " \
          "its extension, in Rust, as it installs.\n\n#{problems.join("\n\n")}\n\n" \
          "Then install the gem again.\n\n#{PLATFORM_GEM}"
  end

  def packages(lines)
    lines.map { |line| "    #{line}" }.join("\n")
  end

  def windows?
    RbConfig::CONFIG["host_os"].match?(/mswin|mingw|cygwin/)
  end

  # The command's path, if it is executable: as given when it has a
  # folder in it, else the first one on PATH.
  def which(command)
    extensions = windows? ? ENV.fetch("PATHEXT", ".exe").split(";") + [""] : [""]
    candidates = if command.include?("/")
                   [command]
                 else
                   ENV.fetch("PATH", "").split(File::PATH_SEPARATOR).map { |dir| File.join(dir, command) }
                 end
    candidates.product(extensions).map(&:join).find { |path| File.file?(path) && File.executable?(path) }
  end

  def cargo_problem
    cargo = ENV.fetch("CARGO", "cargo")
    path = which(cargo)
    return cargo_missing(cargo) unless path

    version = IO.popen([path, "--version"], err: %i[child out], &:read)
    return if $?.success?

    "`#{path} --version` failed:\n#{version.strip.gsub(/^/, '    ')}\n" \
      "With rustup, `rustup default stable` installs a toolchain."
  rescue SystemCallError => e
    "`#{path} --version` could not run: #{e.message}"
  end

  def cargo_missing(cargo)
    home = ENV["CARGO_HOME"] || File.join(ENV.fetch("HOME", "/nonexistent"), ".cargo")
    installed = File.join(home, "bin", "cargo")
    hint = if File.executable?(installed)
             "Rust is installed in #{File.dirname(installed)}, which is not on PATH: run\n" \
               "    . \"$HOME/.cargo/env\""
           else
             "Install Rust (1.88 or newer) with rustup, https://rustup.rs:\n" \
               "    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh\n" \
               "    . \"$HOME/.cargo/env\""
           end
    "`#{cargo}` (Rust's build tool) is not on PATH.\n#{hint}"
  end

  # rustc links with `cc`; RubyGems runs `make`.
  def build_tools_problem
    return if windows?

    missing = ["cc", ENV.fetch("MAKE", "make")].reject { |tool| which(tool) }
    return if missing.empty?

    "#{missing.map { |tool| "`#{tool}`" }.join(' and ')} #{missing.size == 1 ? 'is' : 'are'} not on PATH (a C compiler links Rust's " \
      "output; RubyGems runs make). Install #{missing.size == 1 ? 'it' : 'them'}:\n" +
      packages(["Debian, Ubuntu:  apt-get install build-essential", "Fedora, RHEL:    dnf install gcc make",
                "Alpine:          apk add build-base", "macOS:           xcode-select --install"])
  end

  def ruby_headers_problem
    header = File.join(RbConfig::CONFIG["rubyhdrdir"].to_s, "ruby.h")
    return if File.exist?(header)

    "Ruby's C headers are missing (no #{header}). Install them:\n" +
      packages(["Debian, Ubuntu:  apt-get install ruby-dev", "Fedora, RHEL:    dnf install ruby-devel",
                "Alpine:          apk add ruby-dev"])
  end

  def libclang_problem
    return if libclang_found?

    where = if ENV["LIBCLANG_PATH"]
              "in LIBCLANG_PATH (#{ENV['LIBCLANG_PATH']}), the only place looked at when it is set"
            else
              "on this machine"
            end
    "libclang was not found #{where}: the Rust build reads Ruby's C headers with it (bindgen). " \
      "Install it, or set LIBCLANG_PATH to the folder that holds it:\n" +
      packages(["Debian, Ubuntu:  apt-get install libclang-dev", "Fedora, RHEL:    dnf install clang-devel",
                "Alpine:          apk add clang-dev", "macOS:           xcode-select --install"])
  end

  def libclang_found?
    os = RbConfig::CONFIG["host_os"][/linux|darwin|freebsd/]
    return true unless os # elsewhere, let the build say

    names = os == "darwin" ? ["libclang.dylib"] : ["libclang.so", "libclang-*.so", "libclang.so.*", "libclang-*.so.*"]
    libclang_directories(os).any? do |pattern|
      Dir.glob(names.map { |name| File.join(pattern, name) }).any? { |file| !File.basename(file).include?("-cpp.") }
    end
  end

  def libclang_directories(os)
    if (path = ENV["LIBCLANG_PATH"])
      return [File.file?(path) ? File.dirname(path) : path]
    end

    directories = []
    prefix = command_output("llvm-config", "--prefix")
    directories += %w[bin lib lib64].map { |dir| File.join(prefix, dir) } if prefix
    developer = os == "darwin" && command_output("xcode-select", "--print-path")
    directories << File.join(developer, "Toolchains/XcodeDefault.xctoolchain/usr/lib") if developer
    %w[LD_LIBRARY_PATH LIBRARY_PATH].each { |name| directories += ENV.fetch(name, "").split(File::PATH_SEPARATOR) }
    directories + LIBCLANG_DIRECTORIES.fetch(os == "freebsd" ? "linux" : os)
  end

  # The first line the command prints, nil if it is not there or fails.
  def command_output(*command)
    return nil unless which(command.first)

    output = IO.popen(command, err: File::NULL, &:read)
    $?.success? && !output.strip.empty? ? output.lines.first.strip : nil
  rescue SystemCallError
    nil
  end
end

RedisseBuildCheck.run

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
