# frozen_string_literal: true

require "json"
require "net/http"
require "socket"

RSpec.describe "bundle exec redisse" do
  def free_port
    server = TCPServer.new("127.0.0.1", 0)
    server.addr[1]
  ensure
    server&.close
  end

  def stats(port)
    Net::HTTP.start("127.0.0.1", port, open_timeout: 0.5, read_timeout: 2) do |http|
      http.get("/", "Accept" => "application/json")
    end
  rescue SystemCallError, IOError, Net::OpenTimeout, Net::ReadTimeout
    nil
  end

  it "runs the server from the app's folder, and stops on SIGTERM" do
    port = free_port
    output = IO.pipe
    app_root = File.expand_path("..", __dir__)
    pid = Process.spawn("bundle", "exec", "redisse", "--stdout", "--verbose", "--address", "127.0.0.1",
                        "--port", port.to_s, chdir: app_root, out: output[1], err: output[1])
    output[1].close
    begin
      deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 20
      until (response = stats(port))
        raise "redisse did not answer on port #{port}" if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
        raise "redisse exited: #{output[0].read}" if Process.wait(pid, Process::WNOHANG)

        sleep 0.05
      end

      expect(response.code).to eq "200"
      expect(response["Content-Type"]).to eq "application/json"
      expect(JSON.parse(response.body).keys).to contain_exactly("connected", "events", "served", "missing")

      Process.kill("TERM", pid)
      _, status = Process.wait2(pid)
      pid = nil
      expect(status).to be_success
      expect(output[0].read).to include(port.to_s)
    ensure
      if pid
        Process.kill("KILL", pid)
        Process.wait(pid)
      end
      output[0].close
    end
  end
end
