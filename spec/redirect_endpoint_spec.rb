# frozen_string_literal: true

require "rack/test"
require "rack/lint"

RSpec.describe "Redisse.redirect_endpoint" do
  include Rack::Test::Methods

  let(:redisse) { new_redisse }
  let(:channels) { %w[global channel_1] }

  before do
    listed = -> { channels }
    redisse.channels { |_env| listed.call }
  end

  def app
    Rack::Lint.new(redisse.redirect_endpoint)
  end

  def redirect
    expect(last_response.status).to eq(200)
    last_response.headers["X-Accel-Redirect"]
  end

  it "redirects to the internal URL with the channels in the query" do
    get "/events"

    expect(redirect).to eq("/redisse/?global&channel_1")
  end

  it "ends the internal URL with exactly one slash" do
    %w[/redisse /redisse/ /redisse//].each do |url|
      redisse.nginx_internal_url = url
      get "/events"

      expect(redirect).to eq("/redisse/?global&channel_1"), "for #{url}"
    end
  end

  it "reads nginx_internal_url at each request" do
    endpoint = redisse.redirect_endpoint
    redisse.nginx_internal_url = "/elsewhere"

    status, headers, _body = endpoint.call(Rack::MockRequest.env_for("/events"))

    expect([status, headers["X-Accel-Redirect"]]).to eq([200, "/elsewhere/?global&channel_1"])
  end

  it "passes polling on first" do
    get "/events?polling"

    expect(redirect).to eq("/redisse/?polling&global&channel_1")
  end

  it "passes lastEventId on, after polling" do
    get "/events?lastEventId=42&polling"

    expect(redirect).to eq("/redisse/?polling&lastEventId=42&global&channel_1")
  end

  it "passes the first lastEventId on when it is repeated, as 0.4 did" do
    get "/events?lastEventId=7&lastEventId=9"

    expect(redirect).to eq("/redisse/?lastEventId=7&global&channel_1")
  end

  it "does not pass other params on" do
    get "/events?foo=bar&global&lastEventId=3"

    expect(redirect).to eq("/redisse/?lastEventId=3&global&channel_1")
  end

  it "gives the env to the channels block" do
    redisse.channels { |env| ["user:#{Rack::Request.new(env).params['user']}"] }

    get "/events?user=7"

    expect(redirect).to eq("/redisse/?user%3A7")
  end

  context "with channels to encode" do
    let(:channels) { ["with space", "a&b=c", "100%", "caf\u00e9", "\xFF".b, :sym] }

    it "form-encodes them" do
      get "/events"

      expect(redirect).to eq("/redisse/?with+space&a%26b%3Dc&100%25&caf%C3%A9&%FF&sym")
    end
  end

  context "with a single channel that is not in an Array" do
    let(:channels) { "global" }

    it "coerces it with Array()" do
      get "/events"

      expect(redirect).to eq("/redisse/?global")
    end
  end

  %w[polling lastEventId].each do |name|
    context "with a channel named #{name}" do
      let(:channels) { ["global", name.to_sym] }

      it "refuses it as reserved" do
        expect { get "/events" }.to raise_error(Redisse::ReservedChannelError, /#{name}.*reserved/)
      end

      it "raises a RuntimeError, as 0.4 did, for apps that rescue those" do
        expect { get "/events" }.to raise_error(RuntimeError)
      end
    end
  end

  # A server with the same secret takes the channels from the token only.
  context "with a secret" do
    before do
      redisse.secret = "the secret"
      allow(Time).to receive(:now).and_return(Time.at(1_700_000_000))
    end

    it "hands the channels over in a token that lasts token_lifetime" do
      redisse.token_lifetime = 120
      get "/events?foo=bar&global"

      expect(redirect).to eq("/redisse/?token=#{redisse.stream_token(channels, expires_in: 120)}")
    end

    it "passes polling and lastEventId on before the token" do
      get "/events?lastEventId=42&polling&lastEventId=43"

      expect(redirect).to eq("/redisse/?polling&lastEventId=42&token=#{redisse.stream_token(channels)}")
    end

    context "with channels named polling and lastEventId" do
      let(:channels) { [:polling, "lastEventId"] }

      it "signs them: in a token they cannot be mistaken for options" do
        get "/events"

        expect(redirect).to eq("/redisse/?token=#{redisse.stream_token(%w[polling lastEventId])}")
      end
    end
  end

  it "belongs to its module" do
    Redisse.channels { %w[from_redisse] }
    Redisse.nginx_internal_url = "/main"

    get "/events"

    expect(redirect).to eq("/redisse/?global&channel_1")
    expect(Redisse.redirect_endpoint.call(Rack::MockRequest.env_for("/"))[1]["X-Accel-Redirect"])
      .to eq("/main/?from_redisse")
  end
end
