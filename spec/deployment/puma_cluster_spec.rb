# frozen_string_literal: true

require "rbconfig"
require "tmpdir"

# The example app under real Puma in cluster mode, as production runs it:
# two workers forked after the app and the gem are loaded (and after the
# master published, so that its publisher runtime and connection exist),
# five threads each, driven by wrk posting to /publish. Every publish must
# succeed with its own id, land in Redis, and reach a stream.
RSpec.describe "The example app under Puma in cluster mode" do
  let(:load_script) { File.expand_path("../support/deployment/publish_load.lua", __dir__) }
  let(:example_dir) { File.expand_path("../../example", __dir__) }
  let(:channels) { Array.new(1000) { |i| "load:#{i}" } }
  let(:duration) { Integer(ENV.fetch("PUMA_LOAD_SECONDS", "3")) }

  before(:context) do
    skip "wrk is not installed" unless system("command -v wrk >/dev/null")

    @redis = RedisServerHarness.new
    @redis.start
    @redisse = ServerProcess.new(redis_url: @redis.url, heartbeat: nil).start
  end

  after(:context) do
    @redisse&.stop
    @redis&.shutdown
  end

  around do |example|
    Dir.mktmpdir("redisse-puma") do |dir|
      @dir = dir
      example.run
    ensure
      @puma&.stop
    end
  end

  def start_puma(workers)
    port = free_port
    config = File.join(@dir, "puma.rb")
    File.write(config, <<~RUBY)
      workers #{workers}
      threads 5, 5
      preload_app!
      bind "tcp://127.0.0.1:#{port}"
      before_fork { Redisse.publish("boot", "published by the master before it forks") }
    RUBY
    @puma = LifelineProcess.new("puma", ["puma", "--config", config, File.join(example_dir, "config.ru")],
                                log: File.join(@dir, "puma.log"), env: { "REDISSE_REDIS" => @redis.url },
                                chdir: example_dir).start
    @puma.wait_until_ready("#{workers} puma workers answer", timeout: 30) do
      @puma.log.scan(/Worker \d+ \(PID: \d+\) booted/).size >= workers &&
        SseReader.fetch(port, "/subscriptions")&.status == 200
    end
    port
  end

  # @return [Hash] wrk's figures
  def load_with_wrk(port)
    output, status = run_command("wrk", "-t", "2", "-c", "10", "-d", "#{duration}s", "--timeout", "5s",
                                 "-s", load_script, "http://127.0.0.1:#{port}/", timeout: duration + 30)
    expect(status).to be_success, output
    {
      requests: Integer(output[/(\d+) requests in/, 1]),
      rate: Float(output[/Requests\/sec:\s+([\d.]+)/, 1]),
      errors: output[/Socket errors:.*$/],
      non_2xx: output[/Non-2xx or 3xx responses: (\d+)/, 1].to_i,
      output: output
    }
  end

  [1, 2].each do |workers|
    it "publishes every POST once, into Redis and to a stream, with #{workers} worker(s)" do
      redis = @redis.client
      redis.flushall
      port = start_puma(workers)
      stream = open_stream(@redisse, "/?#{channels.join('&')}")
      wait_until("the stream is subscribed") { redis.pubsub("numsub", "load:999").last.to_i.positive? }

      load = load_with_wrk(port)
      puts "\n    puma, #{workers} worker(s) x 5 threads: #{load[:requests]} publishes in #{duration} s, " \
           "#{load[:rate].round} per second"

      expect(load[:errors]).to be_nil, load[:output]
      expect(load[:non_2xx]).to eq(0), "#{load[:output]}\n#{@puma.log_tail}"
      # The requests wrk cut off at the end may have been served too: puma
      # stops first, so that none of them publishes after the count.
      @puma.stop
      published = Integer(redis.get("redisse:lastEventId")) - 1 # the master's boot event
      expect(published).to be >= load[:requests]
      # After its lastEventId event (the master's boot event, id 1).
      events = stream.wait_for_events(published + 1, timeout: 30).drop(1)
      ids = events.map(&:id_i)
      expect(ids.uniq.size).to eq(published)
      expect(ids.sort).to eq((2..published + 1).to_a)
      expect(channels.sum { |channel| redis.zcard(channel) }).to eq(published)
    end
  end
end
