# frozen_string_literal: true

RSpec.describe "Events", type: :request do
  include Rack::Test::Methods

  def app
    Rails.application
  end

  before do
    Redisse.test_mode!
  end

  it "publishes an event with the form fields" do
    post "/publish", channel: "global", message: "Hello"

    expect(last_response.status).to eq 200
    expect(JSON.parse(last_response.body)).to eq("id" => 1)
    expect(Redisse.published.size).to eq 1
    event = Redisse.published.first
    expect([event.channel, event.type, event.data]).to eq ["global", :message, "Hello"]
  end

  it "refuses a publication without a channel" do
    post "/publish", message: "Hello"

    expect(last_response.status).to eq 400
    expect(Redisse.published).to be_empty
  end

  it "redirects the event stream to nginx with the session's channels" do
    get "/"
    channels = JSON.parse(last_response.body).fetch("channels")
    expect(channels).to match ["global", /\Aprivate_[1-4]\z/]

    get "/events?lastEventId=12", {}, "HTTP_ACCEPT" => "text/event-stream"

    expect(last_response.status).to eq 200
    expect(last_response.headers["X-Accel-Redirect"]).to eq "/redisse/?lastEventId=12&#{channels.join('&')}"
  end

  it "gives a new session only the global channel" do
    get "/events?polling"

    expect(last_response.headers["X-Accel-Redirect"]).to eq "/redisse/?polling&global"
  end
end
