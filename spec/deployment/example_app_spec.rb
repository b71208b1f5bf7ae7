# frozen_string_literal: true

require "rack"
require "rack/test"
require_relative "../support/deployment/deployment"

# The example app in-process, with Redisse in test mode: no server needed.
RSpec.describe "The example app" do
  include Rack::Test::Methods

  let(:config_ru) { File.join(Deployment::EXAMPLE, "config.ru") }

  # Loaded again for each example: the spec helper forgets Redisse's
  # settings, channels block included, between examples.
  def app
    @app ||= begin
      loaded = Rack::Builder.parse_file(config_ru)
      Rack::Lint.new(loaded.is_a?(Array) ? loaded.first : loaded)
    end
  end

  before do |example|
    Redisse.test_mode! unless example.metadata[:real_redis]
  end

  def private_channel_on_page
    last_response.body[%r{id="private-channel">([^<]+)<}, 1]
  end

  it "shows the session's channels: global and one of four private channels" do
    get "/"

    expect(last_response.status).to eq 200
    expect(last_response.headers["Content-Type"]).to start_with "text/html"
    private_channel = private_channel_on_page
    expect(private_channel).to match(/\Aprivate_[1-4]\z/)
    listed = last_response.body.scan(/<li data-channel="([^"]+)">/).flatten
    expect(listed).to eq ["global", private_channel]
    expect(last_response.body).to include('<body data-stream="nginx" data-stream-url="">')
    %w[events status role position renewals gaps event-count publish-form publish-channel publish-message
       publish-submit publish-result].each do |id|
      expect(last_response.body).to include(%(id="#{id}"))
    end
  end

  it "keeps the private channel for the whole session" do
    get "/"
    private_channel = private_channel_on_page

    3.times do
      get "/"
      expect(private_channel_on_page).to eq private_channel
    end
    get "/subscriptions"
    expect(last_response.body).to eq "global, #{private_channel}\n"
  end

  it "hands the event stream over to nginx with the session's channels" do
    get "/"
    private_channel = private_channel_on_page

    get "/events", {}, "HTTP_ACCEPT" => "text/event-stream"
    expect(last_response.status).to eq 200
    expect(last_response.headers["X-Accel-Redirect"]).to eq "/redisse/?global&#{private_channel}"

    get "/events?polling&lastEventId=42&other=1"
    expect(last_response.headers["X-Accel-Redirect"])
      .to eq "/redisse/?polling&lastEventId=42&global&#{private_channel}"
  end

  it "gives a request without a session only the global channel" do
    get "/events"

    expect(last_response.headers["X-Accel-Redirect"]).to eq "/redisse/?global"
  end

  it "says what the page without nginx needs when it is not configured" do
    %w[/direct /stream_url].each do |path|
      get path

      expect(last_response.status).to eq(503), path
      expect(last_response.body).to include("REDISSE_SECRET and STREAM_SERVER_URL")
    end
  end

  # As bin/demo runs it.
  context "with a secret and the URL of the redisse server" do
    around do |example|
      settings = { "REDISSE_SECRET" => "the secret", "STREAM_SERVER_URL" => "http://events.test/",
                   "TOKEN_LIFETIME" => "60" }
      settings.each { |name, value| ENV[name] = value }
      example.run
    ensure
      settings.each_key { |name| ENV.delete(name) }
    end

    before { allow(Time).to receive(:now).and_return(Time.at(1_700_000_000)) }

    it "serves the page that connects to the redisse server directly" do
      get "/direct"

      expect(last_response.status).to eq 200
      token = Redisse.stream_token(["global", private_channel_on_page], expires_in: 60)
      expect(last_response.body)
        .to include(%(<body data-stream="direct" data-stream-url="#{Rack::Utils.escape_html("http://events.test/?token=#{token}")}">),
                    "<code>#{Rack::Utils.escape_html('http://events.test/')}</code>")
    end

    it "signs stream URLs for the session's channels, from the last event id given" do
      get "/direct"
      token = Redisse.stream_token(["global", private_channel_on_page], expires_in: 60)

      get "/stream_url"
      expect(last_response.body).to eq "http://events.test/?token=#{token}"
      expect(last_response.headers["Cache-Control"]).to eq "no-store"

      get "/stream_url?lastEventId=42"
      expect(last_response.body).to eq "http://events.test/?lastEventId=42&token=#{token}"
    end

    it "hands the event stream over to nginx with the channels in a token" do
      get "/"
      token = Redisse.stream_token(["global", private_channel_on_page], expires_in: 60)

      get "/events?polling"
      expect(last_response.headers["X-Accel-Redirect"]).to eq "/redisse/?polling&token=#{token}"
    end
  end

  it "serves the browser client and Turbo to its pages" do
    get "/assets/redisse.js"
    expect(last_response.status).to eq 200
    expect(last_response.body).to eq File.read(File.expand_path("../../app/javascript/redisse.js", __dir__))

    get "/assets/turbo.es2017-esm.js"
    expect(last_response.status).to eq 200
  end

  it "serves the Turbo page, its stream through nginx without a secret" do
    get "/turbo"

    expect(last_response.status).to eq 200
    expect(last_response.body).to include('<redisse-stream-source id="stream" src="/events"></redisse-stream-source>')
  end

  it "appends a message to the Turbo page in every tab, with a Turbo Stream" do
    post "/turbo/messages", message: "Hi <you>"

    expect(last_response.body).to eq "Published event 1 on global\n"
    expect(Redisse.published.map(&:to_a)).to eq [
      ["global", '<turbo-stream action="append" target="messages"><template><li class="message">Hi &lt;you&gt;</li>' \
                 "</template></turbo-stream>", :turboStream]
    ]
  end

  it "publishes the form's message on the form's channel" do
    post "/publish", channel: "private_3", message: "Hello <b>world</b>"

    expect(last_response.status).to eq 200
    expect(last_response.body).to eq "Published event 1 on private_3\n"
    expect(Redisse.published.map(&:to_a)).to eq [["private_3", "Hello <b>world</b>", :message]]
  end

  it "refuses to publish without a channel" do
    post "/publish", message: "Hello"

    expect(last_response.status).to eq 400
    expect(Redisse.published).to be_empty
  end

  it "answers 503 when Redis is unreachable", :real_redis do
    Redisse.redis_server = "redis://127.0.0.1:1/"

    post "/publish", channel: "global", message: "Hello"

    expect(last_response.status).to eq 503
    expect(last_response.body).to start_with "Could not publish"
  end

  describe "nginx.conf" do
    let(:template) { File.read(File.join(Deployment::EXAMPLE, "nginx.conf")) }

    it "streams from an internal location, unbuffered, over HTTP/1.1" do
      location = template[%r{location /redisse \{(.*?)\}}m, 1]
      expect(location).to include("internal;", "proxy_buffering off;", "proxy_http_version 1.1;",
                                  'proxy_set_header Connection "";', "proxy_ignore_client_abort off;")
      expect(location).to match(/proxy_read_timeout \d+h;/)
    end

    it "is a valid configuration once rendered" do
      skip "nginx is not installed" unless system("command -v nginx >/dev/null")

      deployment = Deployment.new
      begin
        config = File.join(deployment.dir, "nginx.conf")
        File.write(config, deployment.nginx_config)
        expect(File.read(config)).not_to include("{{")
        output, status = run_command(
          "nginx", "-t", "-p", deployment.dir, "-c", config,
          "-g", "pid #{deployment.dir}/nginx.pid; error_log stderr;", timeout: 30
        )
        expect(status).to be_success, output
      ensure
        deployment.cleanup
      end
    end
  end
end
