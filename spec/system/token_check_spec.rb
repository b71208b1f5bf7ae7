# frozen_string_literal: true

require "fileutils"
require "tmpdir"
require_relative "../support/system/system_helpers"

# Tokens made by the gem, verified by the server: a token opens its own
# channels and nothing else, no character of it can be changed, it expires,
# and a server in the middle of a rotation takes the tokens of both its
# secrets.
RSpec.describe "Signed streams, from the gem to the server", :system do
  # The status and body of a stream request the server answers at once.
  def answer(path)
    reader = open_stream(server, path).wait_until_finished
    [reader.status, reader.body]
  end

  def refused(reason)
    [403, "403 Forbidden\n#{reason}\n"]
  end

  describe "a server with a secret (REDISSE_SECRET)" do
    with_server(env: { "REDISSE_SECRET" => "the secret" })

    let(:signer) { new_redisse(secret: "the secret") }

    it "streams the channels of the token, and not those the query names" do
      reader = open_stream(server, signer.stream_url("/?named", %w[granted also]))
      expect(reader.status).to eq(200)

      Redisse.publish(:named, "not granted")
      ids = [Redisse.publish(:granted, "one"), Redisse.publish(:also, "two")]

      # In publication order: the first event would have come first.
      expect(reader.wait_for_events(2).map(&:raw)).to eq([event_text(ids[0], "one"), event_text(ids[1], "two")])
    end

    it "refuses a request without a token, whatever channels it names" do
      expect(answer("/?granted")).to eq(refused("missing token"))
    end

    it "refuses the token with any one of its characters changed, or cut, or lengthened" do
      token = signer.stream_token(%w[granted])
      expect(server.probe_status("/?token=#{token}")).to eq(200)

      # Each character turned into two others: one that differs in the
      # lowest of its six bits (in the last character those may be
      # padding), and one that differs in the highest.
      alphabet = [*"A".."Z", *"a".."z", *"0".."9", "-", "_"]
      tampered = token.each_char.with_index.flat_map do |char, at|
        [1, 32].map { |flip| token.dup.tap { |copy| copy[at] = alphabet[alphabet.index(char) ^ flip] } }
      end
      tampered += [token.chop, "#{token}A", "#{token}AAAA"]

      answers = tampered.to_h { |changed| [changed, answer("/?token=#{changed}")] }
      expect(answers.values.uniq - [refused("bad signature"), refused("malformed token")]).to eq([])
      expect(answers.size).to eq(2 * token.length + 3)
    end

    it "ends an open stream with tokenExpired when its token expires, and refuses the token from then on" do
      path = signer.stream_url("/", "short", expires_in: 1)
      signed_at = monotonic_now
      reader = open_stream(server, path)

      reader.wait_until_finished(timeout: 5)

      expect(reader.events.map(&:raw)).to eq(["event: tokenExpired\ndata: \n\n"])
      expect(reader).to be_terminated # the chunked body's end: a clean end
      # Expiry is in whole seconds: 1 to 2 s after signing, which the server
      # may see up to a second late.
      expect(reader.closed_at - signed_at).to be_between(0.9, 3.5)
      expect(answer(path)).to eq(refused("expired token"))
    end

    it "reads polling and lastEventId beside the token" do
      ids = Array.new(3) { |i| Redisse.publish(:replayed, "event #{i}") }

      reader = open_stream(server, signer.stream_url("/", "replayed", polling: true, last_event_id: ids[0]))

      expect(reader.wait_until_finished(timeout: 4).events.map(&:id_i)).to eq(ids.drop(1))
    end
  end

  shared_examples "a server rotating its secret" do
    it "opens streams with tokens of the current and of the previous secret, and refuses a third" do
      streams = [current_signer, previous_signer].map { |signer| open_stream(server, signer.stream_url("/", "rotated")) }
      expect(streams.map(&:status)).to eq([200, 200])

      id = Redisse.publish(:rotated, "to both")

      streams.each { |stream| expect(stream.wait_for_events(1).map(&:raw)).to eq([event_text(id, "to both")]) }
      expect(answer(new_redisse(secret: "a third secret").stream_url("/", "rotated"))).to eq(refused("bad signature"))
    end
  end

  describe "a server with REDISSE_SECRET and REDISSE_SECRET_PREVIOUS" do
    with_server(env: { "REDISSE_SECRET" => "new", "REDISSE_SECRET_PREVIOUS" => "old" })

    let(:current_signer) { new_redisse(secret: "new") }
    let(:previous_signer) { new_redisse(secret: "old") }

    include_examples "a server rotating its secret"
  end

  # The plain binary, as on a host that only serves redirect-mode streams,
  # and secrets in files, which end with a newline: the gem signs with a
  # secret read from the same file.
  describe "the plain binary with --secret-file and --previous-secret-file" do
    before(:all) do
      @secrets = Dir.mktmpdir("redisse-spec-secrets")
      @current, @previous = %w[current previous].map do |name|
        File.join(@secrets, name).tap { |path| File.write(path, "the #{name} secret\n") }
      end
      @server = ServerProcess.new(kind: :binary, redis_url: REDIS_SERVER.url,
                                  args: ["--secret-file", @current, "--previous-secret-file", @previous]).start
    end

    after(:all) do
      @server&.stop
      FileUtils.rm_rf(@secrets)
    end

    let(:server) { @server }
    let(:current_signer) { new_redisse(secret: File.read(@current)) }
    let(:previous_signer) { new_redisse(secret: File.read(@previous)) }

    include_examples "a server rotating its secret"
  end
end
