# frozen_string_literal: true

require "json"
require "tmpdir"
require_relative "../support/rails_app"

# The Rails example (example/rails) runs its own specs with its own bundle,
# as an application using the gem would (see RailsApp): `bundle install`,
# then `bundle exec`, from the app's folder.
RSpec.describe "The Rails example" do
  before(:context) do
    skip "bundler is not installed" unless RailsApp.available?

    @app = RailsApp.new.install
    Dir.mktmpdir("redisse-rails-spec") do |dir|
      report = File.join(dir, "report.json")
      @output, @status = @app.run("bundle", "exec", "rspec", "--format", "progress", "--format", "json",
                                  "--out", report, timeout: 300)
      @examples = File.exist?(report) ? JSON.parse(File.read(report)).fetch("examples") : []
    end
  end

  after(:context) do
    @app&.cleanup
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

  it "renders redisse_stream_from, and publishes Turbo Streams" do
    expect_all_passed("./spec/requests/messages_spec.rb")
  end

  it "installs redisse with its generator, with or without an import map" do
    expect_all_passed("./spec/generators/install_generator_spec.rb")
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
