# frozen_string_literal: true

RSpec.describe "The Rails app" do
  it "boots with the redisse gem from the checkout, loaded by Bundler.require" do
    expect(Rails.application).to be_initialized
    spec = Gem.loaded_specs.fetch("redisse")
    expect(spec.full_gem_path).to eq File.expand_path("../../..", __dir__)
    expect(spec.version.to_s).to eq Redisse::VERSION
    expect(defined?(Redisse::Native::Publisher)).to be_truthy
  end

  it "configures the channels in its initializer" do
    expect(Redisse.channels(Rack::MockRequest.env_for("/"))).to eq ["global"]
  end

  it "mounts the redisse engine at /events" do
    route = Rails.application.routes.routes.find { |r| r.path.spec.to_s.start_with?("/events") }
    expect(route.app.app).to be Redisse::Engine
  end

  it "finds the browser client on the asset path" do
    assets = Rails.application.assets
    # Sprockets (Rails 6.1) or Propshaft (Rails 7.2).
    found = assets.respond_to?(:find_asset) ? assets.find_asset("redisse.js").filename : assets.load_path.find("redisse.js").path
    expect(found.to_s).to eq File.expand_path("../../../app/javascript/redisse.js", __dir__)
  end
end
