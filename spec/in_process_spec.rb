# frozen_string_literal: true

require "rbconfig"
require "tmpdir"

# In-process mode against `channels` blocks that misbehave: slow ones, ones
# that raise anything at all, ones that kill their thread. Whatever they
# do, every request gets an answer, other requests are not held up, and
# the server stops cleanly.
RSpec.describe "In-process mode with misbehaving channels blocks" do
  let(:script) { <<~RUBY }
    require "redisse/server"

    Redisse.nginx_internal_url = nil
    Redisse.channel_workers = Integer(ENV.fetch("SPEC_CHANNEL_WORKERS", "32"))
    Redisse.channels_timeout = Float(ENV.fetch("SPEC_CHANNELS_TIMEOUT", "10"))
    Redisse.channels do |env|
      $stdout.puts "block \#{env['QUERY_STRING']} runs"
      $stdout.flush
      case env["QUERY_STRING"]
      when "whoami" then ["user-\#{env.fetch('HTTP_X_FORWARDED_USER', 'nobody')}"]
      when /\\Aslow/
        # Until the spec lets it go (or the timeout interrupts it).
        sleep 0.01 until File.exist?(ENV.fetch("SPEC_RELEASE"))
        [env["QUERY_STRING"]]
      when "exception" then raise Exception, "not a StandardError"
      when "stack" then (deep = ->(n) { deep.(n + 1) + 1 }).(0)
      when "nomemory" then raise NoMemoryError, "pretend"
      when "kill" then Thread.current.kill
      else [env["QUERY_STRING"]]
      end
    end
    exit Redisse.run(ARGV)
  RUBY

  around do |example|
    Dir.mktmpdir("redisse-in-process") do |dir|
      @release = File.join(dir, "release")
      example.run
    end
  end

  after { @server&.stop }

  def start_server(**env)
    command = [RbConfig.ruby, "-I", File.expand_path("../lib", __dir__), "-e", script, "--"]
    env = env.to_h { |name, value| ["SPEC_#{name.upcase}", value.to_s] }.merge("SPEC_RELEASE" => @release)
    @server = ServerProcess.new(command: command, redis_url: REDIS_SERVER.url, heartbeat: nil, env: env).start
  end

  def running_blocks
    @server.log.scan(/^block (slow\d+) runs$/).flatten.uniq
  end

  def release_slow_blocks
    File.write(@release, "")
  end

  it "serves a stream while more slow blocks run than 0.4's fixed pool had threads" do
    start_server
    slow = Array.new(12) { |i| open_stream(@server, "/?slow#{i}", head: false) }
    wait_until("12 slow blocks run", timeout: 10) { running_blocks.size == 12 }

    expect(open_stream(@server, "/?quick").status).to eq(200)
    expect(running_blocks.size).to eq(12), "still running: the quick one did not wait for them"

    release_slow_blocks
    expect(slow.map { |reader| reader.read_head(timeout: 10).status }).to all(eq(200))
  end

  it "answers 503 once a block outlives channels_timeout, and frees its thread" do
    start_server(channel_workers: 2, channels_timeout: 0.5)
    slow = Array.new(3) { |i| open_stream(@server, "/?slow#{i}", head: false) }

    expect(slow.map { |reader| reader.read_head(timeout: 10).status }).to all(eq(503))
    expect(@server.log).to include("Redisse.channels_timeout")
    expect(open_stream(@server, "/?after").status).to eq(200)
  end

  it "never calls the block for requests whose client left, and serves the next at once" do
    start_server(channel_workers: 1)
    busy = open_stream(@server, "/?slow0", head: false)
    wait_until("the one thread is busy") { running_blocks == ["slow0"] }
    # More than the server queues for Ruby, all left before an answer.
    1_500.times { |i| open_stream(@server, "/?gone#{i}", head: false).close }
    wait_until("the server saw them leave", timeout: 20) do
      @server.metric("redisse_requests_abandoned_total") == 1_500
    end
    real = open_stream(@server, "/?real", head: false)
    release_slow_blocks

    expect(real.read_head(timeout: 5).status).to eq(200)
    expect(busy.read_head(timeout: 5).status).to eq(200)
    expect(@server.log).not_to include("block gone")
  end

  it "leaves header names with an underscore out of the env, as Puma does" do
    start_server
    spoofed = open_stream(@server, "/?whoami", { "X_Forwarded_User" => "admin" })
    proxied = open_stream(@server, "/?whoami", { "X-Forwarded-User" => "alice" })

    expect([spoofed.status, proxied.status]).to eq([200, 200])
    expect(@server.log).to include('"user-nobody"', '"user-alice"')
    expect(@server.log).not_to include("user-admin")
  end

  it "answers 500 for anything a block raises, and lives on" do
    start_server(channel_workers: 4)
    %w[exception stack nomemory kill].each do |failure|
      6.times do
        expect(open_stream(@server, "/?#{failure}").status).to eq(500), "#{failure}\n#{@server.log_tail}"
      end
    end
    expect(@server.log).to include("Exception: not a StandardError", "SystemStackError", "NoMemoryError")

    expect(open_stream(@server, "/?still").status).to eq(200)
  end

  it "answers 503 to requests waiting on Ruby at SIGTERM, and exits 0" do
    start_server
    expect(open_stream(@server, "/?kill").status).to eq(500)
    waiting = open_stream(@server, "/?slow0", head: false)
    wait_until("the slow block runs") { running_blocks == ["slow0"] }

    status = @server.terminate(timeout: 5)

    expect(waiting.read_head(timeout: 5).status).to eq(503)
    expect(status).not_to be_nil, "still running 5 s after SIGTERM:\n#{@server.log_tail}"
    expect(status.exitstatus).to eq(0), "#{status.inspect}\n#{@server.log_tail}"
  end
end
