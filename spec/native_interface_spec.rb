# frozen_string_literal: true

require "rbconfig"
require "timeout"

# The extension never does what pure-Ruby redis-rb would not: its blocking
# calls give way to Timeout, Thread#kill and Ctrl-C, forks and signals are
# safe, and a missing exception class fails the load (doc/native-interface.md).
RSpec.describe "The native extension" do
  LIB = File.expand_path("../lib", __dir__)

  # A Redis of its own, to freeze (SIGSTOP) without disturbing the others.
  before(:context) do
    @frozen = RedisServerHarness.new
    @frozen.start
  end

  after(:context) { @frozen&.shutdown }

  after { @frozen.resume }

  let(:publisher) { new_redisse(redis_server: @frozen.url, command_timeout: 5) }

  # A Ruby script in a child process, with the gem loaded.
  def ruby_script(script, &block)
    IO.popen([RbConfig.ruby, "-I", LIB, "-e", script], err: %i[child out], &block)
  end

  # Waits until `thread` is blocked (sleeping in a native wait).
  def wait_until_blocked(thread)
    wait_until("the thread is blocked") { thread.status == "sleep" }
  end

  describe "a publish to a frozen Redis" do
    before do
      publisher.publish(:warm, "up") # connected before Redis freezes
      @frozen.pause
    end

    it "gives way to Timeout within about its time, then publishes on a fresh connection" do
      took = elapsed do
        expect { Timeout.timeout(0.5) { publisher.publish(:frozen, "lost") } }.to raise_error(Timeout::Error)
      end
      expect(took).to be < 2.5, "took #{took} s; the command timeout is 5 s"

      @frozen.resume
      id = publisher.publish(:frozen, "after")
      expect(@frozen.client.zrange("frozen", -1, -1)).to eq(["id: #{id}\nevent: message\ndata: after\n\n"])
    end

    it "gives way to Thread#kill at once" do
      thread = Thread.new { publisher.publish(:frozen, "killed") }
      wait_until_blocked(thread)

      took = elapsed { expect(thread.kill.join(2)).not_to be_nil }
      expect(took).to be < 1
    end

    it "gives way to Thread#raise, and the exception starts in Ruby" do
      thread = Thread.new do
        publisher.publish(:frozen, "raised")
      rescue ArgumentError => e
        e
      end
      wait_until_blocked(thread)
      thread.raise(ArgumentError, "from outside")

      expect(thread.join(2)&.value).to be_a(ArgumentError).and(have_attributes(message: "from outside"))
    end

    it "gives way to Ctrl-C" do
      script = <<~RUBY
        # A shell may start its background jobs with SIGINT ignored.
        trap("INT", "DEFAULT")
        $stdout.sync = true
        require "redisse"
        Redisse.redis_server = #{@frozen.url.inspect}
        $stdout.puts "publishing"
        begin
          Redisse.publish(:frozen, "interrupted")
        rescue Interrupt
          $stdout.puts "interrupted"
          exit! 7
        end
      RUBY
      io = ruby_script(script)
      expect(io.gets).to eq("publishing\n")
      # Its main thread is then blocked in the publish (its first, which
      # connects to the frozen Redis and waits for the answer).
      wait_until("the child waits in its publish") do
        File.read("/proc/#{io.pid}/task/#{io.pid}/status")[/^State:\s+S/]
      end
      Process.kill("INT", io.pid)
      exited = wait_until("the child exits", timeout: 3) { Process.wait2(io.pid, Process::WNOHANG) }
      expect(io.read).to eq("interrupted\n")
      expect(exited.last.exitstatus).to eq(7)
    ensure
      io&.close
    end
  end

  it "blocks no signal on the Ruby thread that publishes, and every signal but faults on its own" do
    script = <<~RUBY
      require "redisse"
      Redisse.redis_server = #{@frozen.url.inspect}
      Redisse.publish(:warm, "up")
      Process.kill("STOP", #{@frozen.pid}) # frozen: the next publish waits
      thread = Thread.new { Redisse.publish(:frozen, "x") rescue nil }
      sleep 0.01 until thread.status == "sleep"
      masks = Dir["/proc/self/task/*"].to_h do |task|
        status = File.read(File.join(task, "status"))
        [File.basename(task).to_i, [status[/^Name:\\s*(.*)$/, 1], status[/^SigBlk:\\s*(\\h+)$/, 1].to_i(16)]]
      end
      puts masks.fetch(thread.native_thread_id).last
      puts masks.values.select { |name, _| name.start_with?("redisse-publish") }.map(&:last).inspect
      Process.kill("CONT", #{@frozen.pid})
      thread.kill
    RUBY
    output = ruby_script(script, &:read)
    ruby_mask, *_ = output.lines
    ruby_mask = Integer(ruby_mask, 10)
    own_masks = eval(output.lines[1]) # rubocop:disable Security/Eval
    bit = ->(signal) { 1 << (Signal.list.fetch(signal) - 1) }

    expect(ruby_mask & (bit["TERM"] | bit["INT"] | bit["SEGV"] | bit["BUS"])).to eq(0), output
    # A publish runs on its caller's thread; a thread of ours (a blocking
    # DNS lookup) never takes a signal meant for Ruby.
    expect(own_masks).to all(satisfy { |mask| mask & bit["TERM"] != 0 && mask & bit["SEGV"] == 0 })
  end

  it "publishes from forked children while other threads publish" do
    redisse = new_redisse(redis_server: REDIS_SERVER.url)
    stop = false
    threads = Array.new(4) { Thread.new { redisse.publish(:busy, "thread") until stop } }
    children = Array.new(50) do
      fork do
        Timeout.timeout(5) { redisse.publish(:forked, "child #{Process.pid}") }
        exit!(0)
      rescue Exception # rubocop:disable Lint/RescueException
        exit!(1)
      end
    end
    statuses = children.map do |pid|
      wait_until("child #{pid} exits", timeout: 10) { Process.wait2(pid, Process::WNOHANG)&.last }
    end
    stop = true
    threads.each(&:join)

    expect(statuses.map(&:exitstatus)).to all(eq(0))
    expect(redis.zcard("forked")).to eq(50)
  end

  describe "a server's blocking calls" do
    before do
      command_line = Redisse::Native::CommandLine.parse(
        ["--address", "127.0.0.1", "--port", "0", "--log", File::NULL], REDIS_SERVER.url, "0"
      )
      @server = Redisse::Native::Server.start(command_line, true, 10.0)
    end

    after do
      @server.shutdown
      Timeout.timeout(10) { until @server.wait; end }
    end

    it "gives way to Timeout in wait and in next_channel_request" do
      expect { Timeout.timeout(0.3) { until @server.wait; end } }.to raise_error(Timeout::Error)
      expect { Timeout.timeout(0.3) { loop { break unless @server.next_channel_request.nil? } } }
        .to raise_error(Timeout::Error)
    end

    it "gives way to Thread#kill in wait and in next_channel_request" do
      waiting = Thread.new { until @server.wait; end }
      popping = Thread.new { loop { break unless @server.next_channel_request.nil? } }
      [waiting, popping].each { |thread| wait_until_blocked(thread) }

      expect([waiting, popping].map { |thread| thread.kill.join(2) }).to all(be_a(Thread))
    end
  end

  it "refuses to load without its exception classes, with a LoadError that says so" do
    script = 'module Redisse; end; begin; require "redisse/redisse"; rescue LoadError => e; print e.message; end'
    output = ruby_script(script, &:read)

    expect(output).to include("Redisse::Error", "redisse/errors")
  end
end
