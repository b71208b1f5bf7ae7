# frozen_string_literal: true

require "fileutils"
require "tmpdir"
require_relative "commands"

# The Rails example (example/rails) under its own bundle, as an application
# using the gem would run: Bundler resolves the gem from this checkout,
# offline, among Debian's gems. `bundle install` is what puts the `redisse`
# executable of the gem (a `path:` gem) where `bundle exec redisse` finds
# it; its gems and executables go to a GEM_HOME of this run, so that
# nothing an earlier install left on the machine can make a spec pass, and
# nothing is left behind.
class RailsApp
  ROOT = File.expand_path("../../example/rails", __dir__)

  def self.available?
    system("command -v bundle >/dev/null")
  end

  # The environment of the app's commands: its own bundle, whatever bundle
  # this run may be in, with Debian's gems visible beside the new GEM_HOME.
  attr_reader :env

  def initialize
    @gem_home = Dir.mktmpdir("redisse-rails-gems")
    @env = ENV.to_h.reject do |name, _|
      name.start_with?("BUNDLE_", "GEM_") || %w[RUBYOPT RUBYLIB].include?(name)
    end
    @env["BUNDLE_GEMFILE"] = File.join(ROOT, "Gemfile")
    @env["GEM_HOME"] = @gem_home
    @env["GEM_PATH"] = [@gem_home, *Gem.path].join(File::PATH_SEPARATOR)
  end

  # `bundle install --local`: offline, every gem is already on the machine.
  # @return [self]
  def install
    output, status = run("bundle", "install", "--local", timeout: 120)
    raise "bundle install --local failed in #{ROOT}:\n#{output}" unless status.success?

    self
  end

  # Runs a command in the app's folder, with its bundle.
  # @return [Array(String, Process::Status)]
  def run(*command, timeout:)
    Commands.run_command(*command, env: env, chdir: ROOT, unsetenv_others: true, timeout: timeout)
  end

  def cleanup
    FileUtils.rm_rf(@gem_home)
  end
end
