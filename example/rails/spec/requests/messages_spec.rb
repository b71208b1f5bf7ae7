# frozen_string_literal: true

RSpec.describe "Messages", type: :request do
  include Rack::Test::Methods

  def app
    Rails.application
  end

  before { Redisse.test_mode! }

  # The tag that `redisse_stream_from` rendered, as attributes.
  def stream_source
    tag = last_response.body[/<redisse-stream-source [^>]*>/]
    expect(tag).not_to be_nil, last_response.body
    tag.scan(/([a-z-]+)="([^"]*)"/).to_h { |name, value| [name, CGI.unescapeHTML(value)] }
  end

  def query(url)
    Rack::Utils.parse_query(URI(url).query)
  end

  it "appends a posted message in every page, as a Turbo Stream" do
    post "/messages", text: "Hello <b>"

    expect(last_response.status).to eq 200
    event = Redisse.published.last
    expect([event.channel, event.type]).to eq ["messages", :turboStream]
    expect(event.data).to eq '<turbo-stream action="append" target="messages"><template>' \
                             "<li class=\"message\">Hello &lt;b&gt;</li>\n</template></turbo-stream>"
  end

  context "without a secret" do
    it "renders the stream source on the engine's path, which nginx hands over to the server" do
      get "/messages"

      source = stream_source
      expect(source.keys).to contain_exactly("src", "id")
      expect(URI(source["src"]).path).to eq "/events/"

      get source["src"], {}, "HTTP_ACCEPT" => "text/event-stream", "QUERY_STRING" => "#{URI(source['src']).query}&lastEventId=7"
      expect(last_response.headers["X-Accel-Redirect"]).to eq "/redisse/?lastEventId=7&messages"
    end

    it "refuses a stream request whose channels were not signed by the application" do
      get "/events", streams: "forged"

      expect(last_response.status).to eq 403
      expect(last_response.headers["X-Accel-Redirect"]).to be_nil
    end
  end

  context "with a secret and the redisse server's URL" do
    around do |example|
      Redisse.secret = "the secret"
      Redisse.server_url = "https://events.example.com/"
      example.run
    ensure
      Redisse.secret = nil
      Redisse.server_url = nil
    end

    it "renders a signed URL on the server, and the engine's URL for the next ones" do
      get "/messages"

      source = stream_source
      expect(source["src"]).to start_with("https://events.example.com/?token=")
      expect(URI(source["endpoint"]).path).to eq "/events/url"

      get source["endpoint"], lastEventId: "12"
      expect(last_response.status).to eq 200
      renewed = last_response.body
      expect(renewed).to start_with("https://events.example.com/?lastEventId=12&token=")
      token = query(renewed)["token"]
      expect(token).to eq Redisse.stream_token(["messages"], expires_in: Redisse.token_lifetime)
    end

    it "refuses to sign channels that the application did not sign for the page" do
      forged = Rails.application.message_verifier("another purpose").generate(["admin"])
      get "/events/url", streams: forged

      expect(last_response.status).to eq 403
      expect(last_response.body).to be_empty
    end
  end
end
