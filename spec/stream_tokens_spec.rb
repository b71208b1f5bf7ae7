# frozen_string_literal: true

require "base64"
require "openssl"

# The Ruby side of signed streams: the secret, the tokens and the URLs.
# That the server takes them is in spec/system/token_check_spec.rb.
RSpec.describe "Signed streams" do
  let(:redisse) { new_redisse(secret: "the secret") }
  let(:now) { Time.at(1_700_000_000.25) }

  before { allow(Time).to receive(:now).and_return(now) }

  # The token's bytes: version, MessagePack payload, HMAC-SHA256.
  def token_bytes(token)
    Base64.urlsafe_decode64(token + ("=" * (-token.length % 4)))
  end

  describe "secret" do
    around do |example|
      example.run
    ensure
      ENV.delete("REDISSE_SECRET")
    end

    it "defaults to REDISSE_SECRET" do
      ENV["REDISSE_SECRET"] = "from the environment"

      expect(new_redisse.secret).to eq("from the environment")
      expect(new_redisse).to be_signed_streams
    end

    it "is none without REDISSE_SECRET, or empty" do
      expect(new_redisse.secret).to be_nil
      expect(new_redisse).not_to be_signed_streams
      expect(new_redisse(secret: " \n")).not_to be_signed_streams
    end

    it "can be set, to nil too, whatever the environment says" do
      ENV["REDISSE_SECRET"] = "from the environment"

      expect(new_redisse(secret: "set").secret).to eq("set")
      expect(new_redisse(secret: nil)).not_to be_signed_streams
    end

    it "belongs to its module" do
      redisse

      expect(Redisse.secret).to be_nil
      expect { Redisse.stream_token("global") }.to raise_error(Redisse::MissingSecretError)
    end
  end

  describe "stream_token" do
    it "is base64url of version 1, the MessagePack payload [channels, expires_at, key_id] and its HMAC-SHA256" do
      token = redisse.stream_token(["global"], expires_in: 60)

      expect(token).to match(/\A[A-Za-z0-9_-]+\z/)
      bytes = token_bytes(token)
      signed = bytes.byteslice(0, bytes.bytesize - 32)
      expect(bytes.byteslice(-32, 32)).to eq(OpenSSL::HMAC.digest("SHA256", "the secret", signed))
      # fixarray of 3: [fixarray of 1: [bin8 "global"], uint32 expires_at, nil]
      payload = [0x93, 0x91, 0xc4, 6].pack("C4") + "global" + [0xce, 1_700_000_061].pack("CN") + "\xc0".b
      expect(signed).to eq("\x01".b + payload)
    end

    it "lasts at least expires_in seconds, token_lifetime (3600) by default" do
      expect(redisse.token_lifetime).to eq(3600)
      expect(redisse.stream_token("global")).to eq(redisse.stream_token("global", expires_in: 3600))
      expect(token_bytes(redisse.stream_token("global", expires_in: 3600))).to include([1_700_003_601].pack("N"))

      redisse.token_lifetime = 10
      expect(redisse.stream_token("global")).to eq(redisse.stream_token("global", expires_in: 10))
    end

    it "coerces the channels with Array() and to_s, reserved names included" do
      expect(redisse.stream_token(:global)).to eq(redisse.stream_token(["global"]))
      expect(redisse.stream_token([:polling, "lastEventId"]))
        .to eq(Redisse::Native.stream_token(%w[polling lastEventId], 1_700_003_601, "the secret", nil))
    end

    it "carries the key id" do
      expect(redisse.stream_token("global", key_id: :k2))
        .to eq(Redisse::Native.stream_token(["global"], 1_700_003_601, "the secret", "k2"))
    end

    it "signs with the secret without the white space around it, as the server reads it" do
      expect(new_redisse(secret: "\tthe secret\n").stream_token("global")).to eq(redisse.stream_token("global"))
    end

    it "raises a Redisse::Error without a secret, naming the settings" do
      expect { new_redisse.stream_token("global") }
        .to raise_error(Redisse::MissingSecretError, /\.secret or REDISSE_SECRET/)
      expect(Redisse::MissingSecretError.ancestors).to include(Redisse::Error)
    end
  end

  describe "stream_url" do
    let(:token) { redisse.stream_token(%w[global user:1], expires_in: 60) }

    it "is the base with the token in its query" do
      expect(redisse.stream_url("https://events.test/", %w[global user:1], expires_in: 60))
        .to eq("https://events.test/?token=#{token}")
    end

    it "puts polling and lastEventId first, when given" do
      expect(redisse.stream_url("https://events.test/", %w[global user:1], expires_in: 60, polling: true))
        .to eq("https://events.test/?polling&token=#{token}")
      expect(redisse.stream_url("/", %w[global user:1], expires_in: 60, polling: true, last_event_id: 42))
        .to eq("/?polling&lastEventId=42&token=#{token}")
    end

    it "keeps the query the base has" do
      { "https://events.test/?a=1" => "https://events.test/?a=1&token=#{token}",
        "https://events.test/?" => "https://events.test/?token=#{token}",
        "https://events.test/?a=1&" => "https://events.test/?a=1&token=#{token}" }.each do |base, url|
        expect(redisse.stream_url(base, %w[global user:1], expires_in: 60)).to eq(url), base
      end
    end

    it "lasts token_lifetime by default" do
      expect(redisse.stream_url("/", "global")).to eq("/?token=#{redisse.stream_token('global', expires_in: 3600)}")
    end
  end
end
