# frozen_string_literal: true

RSpec.describe "Publishing concurrently" do
  it "gives unique ids, increasing in each thread, from several threads at once" do
    threads = 8
    per_thread = 200
    start = Queue.new
    workers = Array.new(threads) do |n|
      Thread.new do
        start.pop
        Array.new(per_thread) { |i| Redisse.publish("channel_#{n % 2}", "#{n}:#{i}") }
      end
    end
    threads.times { start << true }
    ids = workers.map(&:value)

    ids.each { |thread_ids| expect(thread_ids).to eq(thread_ids.sort.uniq) }
    expect(ids.flatten.uniq.size).to eq(threads * per_thread)
    expect(ids.flatten).to all(be_between(1, threads * per_thread))
    expect(redis.get("redisse:lastEventId")).to eq((threads * per_thread).to_s)
    expect(redis.zcard("channel_0")).to eq(100)
  end

  it "publishes from a forked child and from the parent" do
    parent_before = Redisse.publish("global", "parent before fork")
    reader, writer = IO.pipe

    pid = fork do
      reader.close
      status = 1
      begin
        writer.puts Redisse.publish("global", "child")
        status = 0
      rescue Exception => e # rubocop:disable Lint/RescueException
        writer.puts "#{e.class}: #{e.message}"
      ensure
        writer.close
        # exit! skips at_exit hooks: the parent owns RSpec and the spec Redis.
        exit!(status)
      end
    end
    writer.close
    begin
      parent_after = Redisse.publish("global", "parent after fork")
    ensure
      # Reaped whatever happens, so that it cannot outlive the example.
      child_output = reader.read.strip
      reader.close
      _, status = Process.wait2(pid)
    end

    expect(status.exitstatus).to eq(0), "child failed: #{child_output}"
    ids = [parent_before, Integer(child_output), parent_after]
    expect(ids.uniq.size).to eq(3)
    expect(redis.zcard("global")).to eq(3)
    expect(redis.get("redisse:lastEventId")).to eq("3")
  end

  it "keeps publishing in the parent while children publish" do
    Redisse.publish("global", "warm up")
    pids = Array.new(3) do
      fork do
        ok = Array.new(20) { Redisse.publish("global", "child") }.all?(Integer)
        exit!(ok ? 0 : 1)
      rescue Exception # rubocop:disable Lint/RescueException
        exit!(1)
      end
    end
    begin
      parent_ids = Array.new(20) { Redisse.publish("global", "parent") }
    ensure
      statuses = pids.map { |pid| Process.wait2(pid).last.exitstatus }
    end

    expect(statuses).to eq([0, 0, 0])
    expect(parent_ids).to eq(parent_ids.sort.uniq)
    expect(redis.get("redisse:lastEventId")).to eq("81")
  end

  # App servers get signals all the time (SIGCHLD from their workers, for
  # one): a publish interrupted by one must still succeed.
  it "publishes while the process receives signals" do
    previous_handler = trap("USR2") {}
    signalling = true
    signaller = Thread.new do
      while signalling
        Process.kill("USR2", Process.pid)
        sleep 0.001
      end
    end

    ids = Array.new(1000) { Redisse.publish("global", "hi") }

    expect(ids).to eq((1..1000).to_a)
  ensure
    signalling = false
    signaller&.join
    trap("USR2", previous_handler)
  end
end
