# frozen_string_literal: true

require "fileutils"
require "rbconfig"
require "tmpdir"
require_relative "support/gem_install"

# The gem as users get it: built, installed (which compiles the extension
# with cargo, without the rb_sys gem), and required from another folder.
RSpec.describe "The redisse gem package" do
  root = File.expand_path("..", __dir__)

  # Compiling the extension takes minutes on a cold cache.
  def run!(env, *command, chdir:)
    output, status = run_command(*command, env: env, chdir: chdir, timeout: 900)
    expect(status).to be_success, "#{command.join(' ')} failed:\n#{output}"
    output
  end

  it "installs with its native extension and loads from any folder" do
    Dir.mktmpdir("redisse-gem") do |dir|
      gem_file = File.join(dir, "redisse.gem")
      install_dir = File.join(dir, "gems")
      # Dependencies compiled once and kept between runs; the gem's own
      # crates are compiled from the installed sources.
      # The installed gems (Debian's rack) stay visible beside the new folder.
      runtime = GemInstall.gem_env(install_dir)
      build = runtime.merge("CARGO_TARGET_DIR" => File.join(root, "target", "gem-install"))
      run!(build, "gem", "build", "redisse.gemspec", "--output", gem_file, chdir: root)
      run!(build, "gem", "install", "--local", "--no-document", gem_file, chdir: dir)

      script = 'require "redisse"; print Redisse::VERSION, " ", ' \
               'Redisse::ServerSentEvents.server_sent_event("hi", type: :t, id: 1).inspect, " ", ' \
               '$LOADED_FEATURES.grep(/redisse\.so/).first'
      output = run!(runtime, RbConfig.ruby, "-e", script, chdir: dir)
      expect(output).to start_with(%(#{Redisse::VERSION} "id: 1\\nevent: t\\ndata: hi\\n\\n"))
      expect(output).to include(install_dir)

      help = run!(runtime, File.join(install_dir, "bin", "redisse"), "--help", chdir: dir)
      expect(help).to include("--redis")
    end
  end

  it "claims the Rubies it is tested on, and has the metadata RubyGems users expect" do
    spec = Gem::Specification.load(File.join(root, "redisse.gemspec"))
    expect(spec.required_ruby_version).to be_satisfied_by(Gem::Version.new(RUBY_VERSION))
    expect(spec.required_ruby_version).not_to be_satisfied_by(Gem::Version.new("3.0.7"))
    expect(spec.metadata).to include("homepage_uri", "source_code_uri", "changelog_uri")
    expect(spec.metadata["changelog_uri"]).to end_with("/v#{spec.version}/CHANGELOG.md")
    expect(spec.files).to include("CHANGELOG.md", "LICENSE", "ext/redisse/extconf.rb", "Cargo.lock")
  end

  # What RubyGems runs first when it installs the source gem; the missing
  # tool is named before anything compiles.
  describe "extconf.rb" do
    extconf = File.join(root, "ext", "redisse", "extconf.rb")

    # Runs extconf.rb in a folder of its own; `ruby_headers` stands for
    # the folder of Ruby's C headers.
    def extconf_output(extconf, env, ruby_headers: nil)
      Dir.mktmpdir("redisse-extconf") do |dir|
        command = [RbConfig.ruby, extconf]
        if ruby_headers
          command = [RbConfig.ruby, "-rrbconfig", "-e", "RbConfig::CONFIG['rubyhdrdir'] = ARGV.shift; load ARGV.shift",
                     ruby_headers, extconf]
        end
        output, status = run_command(*command, env: env, chdir: dir, timeout: 60)
        [output, status, File.exist?(File.join(dir, "Makefile"))]
      end
    end

    it "stops at once when cargo is missing, naming what to install" do
      Dir.mktmpdir("home") do |home| # a HOME without ~/.cargo
        output, status, makefile = extconf_output(extconf, { "PATH" => GemInstall.path_without_rust, "HOME" => home,
                                                             "CARGO" => nil, "CARGO_HOME" => nil })
        expect(status).not_to be_success
        expect(makefile).to be false
        expect(output).to include("`cargo` (Rust's build tool) is not on PATH", "https://rustup.rs",
                                  "gem install redisse --platform x86_64-linux")
        expect(output).not_to include("libclang was not found", "Ruby's C headers", "`make`")
      end
    end

    it "names every missing piece at once: cargo, cc and make, Ruby's headers, libclang" do
      Dir.mktmpdir("bare") do |bare|
        output, status, makefile = extconf_output(extconf, { "PATH" => bare, "HOME" => bare, "LIBCLANG_PATH" => bare,
                                                             "CARGO" => nil, "CARGO_HOME" => nil, "MAKE" => nil },
                                                  ruby_headers: File.join(bare, "include"))
        expect(status).not_to be_success
        expect(makefile).to be false
        expect(output).to include("`cargo` (Rust's build tool) is not on PATH", "https://rustup.rs",
                                  "`cc` and `make` are not on PATH", "apt-get install build-essential",
                                  "Ruby's C headers are missing (no #{bare}/include/ruby.h)", "apt-get install ruby-dev",
                                  "libclang was not found", "apt-get install libclang-dev")
      end
    end

    it "says to put ~/.cargo/bin on PATH when Rust is there but not on PATH" do
      Dir.mktmpdir("home") do |home|
        FileUtils.mkdir_p(File.join(home, ".cargo", "bin"))
        FileUtils.touch(File.join(home, ".cargo", "bin", "cargo"))
        File.chmod(0o755, File.join(home, ".cargo", "bin", "cargo"))
        output, status, = extconf_output(extconf, { "PATH" => GemInstall.path_without_rust, "HOME" => home,
                                                    "CARGO" => nil, "CARGO_HOME" => nil })
        expect(status).not_to be_success
        expect(output).to include("Rust is installed in #{home}/.cargo/bin, which is not on PATH", '. "$HOME/.cargo/env"')
      end
    end

    it "stops at once when libclang is missing, naming what to install" do
      Dir.mktmpdir("no-libclang") do |empty|
        # clang-sys looks only there when LIBCLANG_PATH is set.
        output, status, makefile = extconf_output(extconf, { "LIBCLANG_PATH" => empty })
        expect(status).not_to be_success
        expect(makefile).to be false
        expect(output).to include("libclang was not found in LIBCLANG_PATH (#{empty})", "apt-get install libclang-dev",
                                  "gem install redisse --platform x86_64-linux")
      end
    end

    it "writes the Makefile when everything is there" do
      output, status, makefile = extconf_output(extconf, {})
      expect(status).to be_success, output
      expect(makefile).to be true
    end
  end
end
