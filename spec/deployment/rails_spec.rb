# frozen_string_literal: true

require "fileutils"
require "json"
require "tmpdir"
require_relative "../support/deployment/deployment"

# The Rails example (example/rails) runs its own specs with its own bundle,
# as an application using the gem would: Bundler resolves the gem from this
# checkout, offline, among Debian's gems.
#
# It follows a user's first steps in the app's folder: `bundle install`,
# then `bundle exec`. `bundle install` is what puts the `redisse` executable
# of the gem (a `path:` gem) where `bundle exec redisse` finds it; `bundle
# check` passes without it. Gems and executables that `bundle install`
# writes go to a GEM_HOME of this run, so that nothing an earlier install
# left on the machine can make the spec pass, and nothing is left behind.
RSpec.describe "The Rails example" do
  app_root = File.join(Deployment::EXAMPLE, "rails")

  before(:context) do
    skip "bundler is not installed" unless system("command -v bundle >/dev/null")

    @gem_home = Dir.mktmpdir("redisse-rails-gems")
    # Whatever bundle this run may be in, the app uses its own.
    env = ENV.to_h.reject do |name, _|
      name.start_with?("BUNDLE_", "GEM_") || %w[RUBYOPT RUBYLIB].include?(name)
    end
    env["BUNDLE_GEMFILE"] = File.join(app_root, "Gemfile")
    # The installed gems (Debian's) stay visible beside the new folder.
    env["GEM_HOME"] = @gem_home
    env["GEM_PATH"] = [@gem_home, *Gem.path].join(File::PATH_SEPARATOR)

    # Offline: every gem is already on the machine.
    install, status = run_command("bundle", "install", "--local",
                                  env: env, chdir: app_root, unsetenv_others: true, timeout: 120)
    raise "bundle install --local failed in #{app_root}:\n#{install}" unless status.success?

    Dir.mktmpdir("redisse-rails-spec") do |dir|
      report = File.join(dir, "report.json")
      @output, @status = run_command(
        "bundle", "exec", "rspec", "--format", "progress", "--format", "json", "--out", report,
        env: env, chdir: app_root, unsetenv_others: true, timeout: 300
      )
      @examples = File.exist?(report) ? JSON.parse(File.read(report)).fetch("examples") : []
    end
  end

  after(:context) do
    FileUtils.rm_rf(@gem_home) if @gem_home
  end

  def results_of(file)
    examples = @examples.select { |example| example["file_path"] == file }
    expect(examples).not_to be_empty, "no example ran in #{file}:\n#{@output}"
    examples.to_h { |example| [example["full_description"], example["status"]] }
  end

  def expect_all_passed(file)
    results = results_of(file)
    expect(results.values.uniq).to eq(["passed"]), "#{results.inspect}\n#{@output}"
  end

  it "passes its request spec: publishing in test mode, redirecting event streams" do
    expect_all_passed("./spec/requests/events_spec.rb")
  end

  it "boots with the gem loaded by Bundler.require" do
    expect_all_passed("./spec/boot_spec.rb")
  end

  it "runs `bundle exec redisse` from its folder" do
    expect_all_passed("./spec/redisse_server_spec.rb")
  end

  it "has nothing else failing" do
    expect(@status).to be_success, @output
  end
end
