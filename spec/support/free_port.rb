# frozen_string_literal: true

require "socket"

# A port nothing listens on: asking the kernel for port 0 gives one, and it
# stays free long enough for the server under test to bind it.
def free_port
  TCPServer.open("127.0.0.1", 0) { |server| server.addr[1] }
end
