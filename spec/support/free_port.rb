# frozen_string_literal: true

require "socket"

# A port nothing listens on, for a server to bind a moment later.
#
# Taken below the ports the kernel gives to outgoing connections: one of
# those may go to any connection on the machine meanwhile, and a
# deployment binds its last server seconds after choosing its ports, while
# other test suites may be running.
module FreePort
  ATTEMPTS = 100
  # Its own generator: spec_helper seeds Kernel's with the run's seed, and
  # two runs with one seed would pick the same ports.
  RANDOM = Random.new

  module_function

  def pick
    low = ephemeral_low
    ATTEMPTS.times do
      port = RANDOM.rand((low / 2)...low)
      return port if free?(port)
    end
    raise "no free port found in #{ATTEMPTS} attempts between #{low / 2} and #{low}"
  end

  def free?(port)
    TCPServer.open("127.0.0.1", port).close
    true
  rescue Errno::EADDRINUSE, Errno::EACCES
    false
  end

  # The first port of the kernel's ephemeral range (Linux's default when
  # /proc does not say).
  def ephemeral_low
    Integer(File.read("/proc/sys/net/ipv4/ip_local_port_range").split.first, 10)
  rescue SystemCallError, ArgumentError
    32_768
  end
end

def free_port
  FreePort.pick
end
