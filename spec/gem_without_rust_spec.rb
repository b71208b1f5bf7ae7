# frozen_string_literal: true

require "fileutils"
require "rbconfig"
require "rubygems/package"
require "tmpdir"
require_relative "support/commands"
require_relative "support/waiting"
require_relative "support/gem_install"
require_relative "support/redis_server"
require_relative "support/server_process"

# The gems on a machine without Rust, as on a production host or in a slim
# Docker image: the platform gem installs in seconds and runs, with `gem`
# and with Bundler; the source gem stops at once, saying what to install.
#
# The gems are built first (`rake gems`) where Rust is installed; the
# installs then run with no Rust tool on PATH, in throwaway GEM_HOMEs.
# Needs nothing of this checkout built, so that it also runs on a machine
# that never had Rust, with the gems copied into pkg/ (bin/check-platform-gem
# runs it on its own, without spec_helper).
RSpec.describe "The gems on a machine without Rust" do
  include Commands
  include Waiting

  before(:all) do
    @source_gem, @platform_gem = GemInstall.build_gems
    @dir = Dir.mktmpdir("redisse-no-rust")
    @home = FileUtils.mkdir_p(File.join(@dir, "home")).first
    @gem_home = File.join(@dir, "gems")
    @env = GemInstall.gem_env(@gem_home, rust: false, home: @home)
    @redis = RedisServerHarness.new.tap(&:start)

    started = monotonic_now
    @install_output, @install_status = run_command("gem", "install", "--local", "--no-document", @platform_gem,
                                                   env: @env, chdir: @dir, timeout: 300)
    @install_seconds = monotonic_now - started
    puts format("\n  gem install --local %<gem>s: %<seconds>.1f s", gem: File.basename(@platform_gem),
                                                                   seconds: @install_seconds)
  end

  after(:all) do
    @redis&.shutdown
    FileUtils.rm_rf(@dir) if @dir
  end

  # Runs the command in the environment without Rust and expects it to succeed.
  def run!(*command, env: @env, chdir: @dir, timeout: 120)
    output, status = run_command(*command, env: env, chdir: chdir, timeout: timeout)
    expect(status).to be_success, "`#{command.join(' ')}` failed:\n#{output}"
    output
  end

  # "In seconds": it takes about one.
  let(:install_bound) { 20 }
  let(:installed) { File.join(@gem_home, "gems", File.basename(@platform_gem, ".gem")) }
  let(:abi) { RUBY_VERSION[/\A\d+\.\d+/] }
  let(:extension) { "redisse.#{RbConfig::CONFIG['DLEXT']}" }

  it "runs where no Rust tool is on PATH" do
    output, status = run_command("sh", "-c", "command -v cargo || command -v rustc || command -v rustup",
                                 env: @env, timeout: 10)
    expect(status).not_to be_success, "found #{output}"
  end

  describe "the platform gem" do
    let(:package) { Gem::Package.new(@platform_gem) }

    # lib/redisse/<abi>/redisse.so of each Ruby it holds a build for.
    let(:builds) { package.contents.grep(%r{\Alib/redisse/[\d.]+/#{Regexp.escape(extension)}\z}) }
    let(:abis) { builds.map { |file| file.split("/")[2] }.sort_by { |held| Gem::Version.new(held) } }

    it "holds the extension compiled for this Ruby's ABI, and no extension to build nor Rust source" do
      spec = package.spec
      expect(spec.platform).to eq GemInstall.platform
      expect(spec.extensions).to be_empty
      expect(package.contents).to include("lib/redisse/#{abi}/#{extension}", "lib/redisse.rb", "exe/redisse",
                                          "LICENSE", "CHANGELOG.md", "README.md")
      expect(package.contents).not_to include(a_string_matching(%r{\A(ext|src|crates)/|\ACargo\.|\.rs\z}))
      expect(package.contents.grep(/#{Regexp.escape(extension)}\z/)).to eq builds
    end

    # Made by `rake gems` on Debian 12, it holds Debian 13's Ruby 3.3 build
    # too (unless REDISSE_DEBIAN13=0); made anywhere else, this Ruby's alone.
    it "holds the builds for Ruby 3.1 and 3.3 when it was made on Debian 12" do
      debian12 = File.exist?("/etc/debian_version") && File.read("/etc/debian_version").start_with?("12")
      made_on_debian12 = ENV["REDISSE_PREBUILT_GEMS"] || (debian12 && ENV["REDISSE_DEBIAN13"] != "0")
      skip "made on #{RUBY_PLATFORM} with Ruby #{abi}'s build alone" unless made_on_debian12
      expect(abis).to eq %w[3.1 3.3]
    end

    it "is for the Rubies it holds builds for, and has the metadata RubyGems users expect" do
      requirement = package.spec.required_ruby_version
      major, minor = abis.first.split(".").map(&:to_i)
      expect(requirement).to be_satisfied_by(Gem::Version.new(RUBY_VERSION))
      expect(requirement).to be_satisfied_by(Gem::Version.new("#{abis.first}.0"))
      expect(requirement).to be_satisfied_by(Gem::Version.new("#{abis.last}.9"))
      expect(requirement).not_to be_satisfied_by(Gem::Version.new("#{major}.#{minor - 1}.9")) if minor.positive?
      expect(requirement).not_to be_satisfied_by(Gem::Version.new(abis.last.succ))
      expect(requirement).not_to be_satisfied_by(Gem::Version.new("#{abis.last.succ}.0.preview1"))
      spec = package.spec
      expect(spec.license).to eq "MIT"
      expect(spec.metadata).to include("source_code_uri", "changelog_uri")
      expect(spec.homepage).not_to be_empty
    end

    it "needs no C library newer than glibc 2.34 (the README says so), in any of its builds" do
      builds.each do |build|
        output, status = run_command("objdump", "-T", File.join(installed, build), timeout: 30)
        expect(status).to be_success, output
        versions = output.scan(/GLIBC_([\d.]+)/).flatten.uniq.map { |version| Gem::Version.new(version) }
        expect(versions.max).to be <= Gem::Version.new("2.34"), "#{build} needs glibc #{versions.max}"
      end
    rescue Errno::ENOENT
      skip "objdump (binutils) is not installed"
    end

    it "installs in seconds, building nothing" do
      expect(@install_status).to be_success, @install_output
      expect(@install_output).not_to include("Building native extensions")
      expect(@install_seconds).to be < install_bound
      expect(Dir.glob(File.join(@gem_home, "extensions", "**", extension))).to be_empty
    end

    it "publishes to a local redis-server" do
      script = 'require "redisse"; Redisse.redis_server = ARGV[0]; ' \
               'print Redisse.publish(:installed, "hello"), " ", $LOADED_FEATURES.grep(/redisse\.so/).join(",")'
      id, loaded = run!(RbConfig.ruby, "-e", script, @redis.url).split(" ", 2)
      expect(loaded).to eq File.join(installed, "lib", "redisse", abi, extension)
      redis = @redis.client
      expect(redis.zrange("installed", 0, -1)).to eq ["id: #{id}\nevent: message\ndata: hello\n\n"]
    ensure
      redis&.close
    end

    it "runs `redisse --help`" do
      expect(run!(File.join(@gem_home, "bin", "redisse"), "--help")).to include("--redis", "--port")
    end
  end

  describe "with Bundler, from a local folder of gems" do
    before(:all) do
      @app = FileUtils.mkdir_p(File.join(@dir, "app", "vendor", "cache")).first.delete_suffix("/vendor/cache")
      # Both gems in the folder, as on rubygems.org: Bundler picks the one
      # for this platform.
      FileUtils.cp([@source_gem, @platform_gem], File.join(@app, "vendor", "cache"))
      File.write(File.join(@app, "Gemfile"), %(source "https://rubygems.org"\ngem "redisse"\n))
      # A GEM_HOME of its own: Bundler installs redisse itself.
      @bundle_env = GemInstall.gem_env(File.join(@dir, "bundle-gems"), rust: false, home: @home)
                              .merge("BUNDLE_GEMFILE" => File.join(@app, "Gemfile"))
      # --local: only vendor/cache and the installed gems, never rubygems.org.
      # --no-cache: vendor/cache stays as it is (Debian's rack has no .gem
      # file to copy there).
      started = monotonic_now
      @bundle_output, @bundle_status = run_command("bundle", "install", "--local", "--no-cache",
                                                   env: @bundle_env, chdir: @app, timeout: 300)
      puts format("\n  bundle install --local: %.1f s", monotonic_now - started)
    end

    it "resolves `gem 'redisse'` to the platform gem and installs it" do
      expect(@bundle_status).to be_success, @bundle_output
      expect(@bundle_output).to include("Installing redisse #{Redisse::VERSION} (#{GemInstall.platform})")
      lockfile = File.read(File.join(@app, "Gemfile.lock"))
      expect(lockfile).to include("redisse (#{Redisse::VERSION}-#{GemInstall.platform})")
      # Bundler 2.6 keeps `ruby` among the lockfile's platforms, with the
      # source gem for it: what machines of another kind install.
      platforms = lockfile[/^PLATFORMS\n((?: +\S+\n)+)/, 1].split
      expect(lockfile).not_to include("redisse (#{Redisse::VERSION})\n") unless platforms.include?("ruby")
    end

    it "starts the server with `bundle exec redisse`" do
      expect(@bundle_status).to be_success, @bundle_output
      server = ServerProcess.new(redis_url: @redis.url, command: %w[bundle exec redisse], env: @bundle_env).start
      publisher = 'require "redisse"; Redisse.redis_server = ARGV[0]; print Redisse.publish(:bundled, "bundled")'
      stream = server.open_stream("/?bundled").read_head
      expect(stream.status).to eq 200
      run!("bundle", "exec", "ruby", "-e", publisher, @redis.url, env: @bundle_env, chdir: @app)
      event = stream.wait_for("the published event", timeout: 5) { |reader| reader.events.find { |e| e.data == "bundled" } }
      expect(event.type).to eq "message"
      stream.close
      expect(server.terminate(timeout: 10)).to be_success, server.log_tail
    ensure
      stream&.close
      server&.stop
    end
  end

  describe "the source gem" do
    it "stops at once, saying what to install, instead of compiling" do
      output, status = nil
      seconds = elapsed do
        output, status = run_command("gem", "install", "--local", "--no-document", @source_gem,
                                     env: GemInstall.gem_env(File.join(@dir, "source-gems"), rust: false, home: @home),
                                     chdir: @dir, timeout: 120)
      end
      expect(status).not_to be_success
      expect(output).to include("the native extension cannot be built", "`cargo` (Rust's build tool) is not on PATH",
                                "https://rustup.rs", "gem install redisse --platform x86_64-linux")
      expect(output).not_to include("Compiling")
      expect(seconds).to be < install_bound
    end
  end
end
