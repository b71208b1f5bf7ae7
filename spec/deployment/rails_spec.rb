# frozen_string_literal: true

require "json"
require "open3"
require "tmpdir"
require_relative "support/deployment"

# The Rails example (example/rails) runs its own specs with its own bundle,
# as an application using the gem would: Bundler resolves the gem from this
# checkout, offline, among Debian's gems.
RSpec.describe "The Rails example" do
  app_root = File.join(Deployment::EXAMPLE, "rails")

  before(:context) do
    skip "bundler is not installed" unless system("command -v bundle >/dev/null")

    # Whatever bundle this run may be in, the app uses its own.
    env = ENV.to_h.reject { |name, _| name.start_with?("BUNDLE_") || name == "RUBYOPT" || name == "RUBYLIB" }
    env["BUNDLE_GEMFILE"] = File.join(app_root, "Gemfile")
    @env = env

    # Gemfile.lock is not committed: a fresh checkout resolves it first.
    check, status = Open3.capture2e(env, "bundle", "check", chdir: app_root, unsetenv_others: true)
    unless status.success?
      install, status = Open3.capture2e(env, "bundle", "install", "--local", chdir: app_root, unsetenv_others: true)
      raise "bundle install --local failed in #{app_root}:\n#{check}\n#{install}" unless status.success?
    end

    Dir.mktmpdir("redisse-rails-spec") do |dir|
      report = File.join(dir, "report.json")
      @output, @status = Open3.capture2e(
        env, "bundle", "exec", "rspec", "--format", "progress", "--format", "json", "--out", report,
        chdir: app_root, unsetenv_others: true
      )
      @examples = File.exist?(report) ? JSON.parse(File.read(report)).fetch("examples") : []
    end
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
