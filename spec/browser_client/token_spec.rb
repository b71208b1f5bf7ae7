# frozen_string_literal: true

require "json"

# The client reads a token's channels and expiry to renew it in time: what
# the gem signs now, read by the client with node.
RSpec.describe "The browser client reading the gem's tokens" do
  let(:client) { File.expand_path("../../app/javascript/redisse.js", __dir__) }

  before do
    skip "node is not installed" unless system("command -v node >/dev/null")
  end

  def read_with_client(url)
    script = "import(#{client.to_json}).then((m) => console.log(JSON.stringify(m.readToken(process.argv[1]))))"
    output, status = run_command("node", "-e", script, url, timeout: 30)
    expect(status).to be_success, output
    JSON.parse(output)
  end

  it "reads the channels and the expiry of a signed URL" do
    Redisse.secret = "a secret"
    channels = ["global", "user:1", "é" * 40, "x" * 300]
    url = Redisse.stream_url("https://events.example.com/", channels, expires_in: 600, last_event_id: 7)

    read = read_with_client(url)

    expect(read["channels"]).to eq channels
    expect(read["expiresAt"]).to be_within(1).of(Time.now.to_i + 600)
  end

  it "reads the fixture of its unit tests as the gem signs it today" do
    token = Redisse::Native.stream_token(%w[global user:1], 1_893_456_000, "a secret", nil)
    support = File.read(File.expand_path("../../js/test/support.mjs", __dir__))

    expect(support).to include("https://events.example.com/?token=#{token}")
  end
end
