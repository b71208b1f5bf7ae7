# frozen_string_literal: true

require "socket"

# A minimal HTTP/1.1 client for the server specs: it reads a response as it
# arrives, so that an event stream that never ends can be inspected.
class HttpClient
  Response = Struct.new(:status, :headers, :body)

  def initialize(port, timeout: 5)
    @socket = Socket.tcp("127.0.0.1", port, connect_timeout: timeout)
    @timeout = timeout
    @buffer = +"".b
  end

  def get(path, headers = {})
    lines = ["GET #{path} HTTP/1.1", "Host: 127.0.0.1"]
    headers.each { |name, value| lines << "#{name}: #{value}" }
    @socket.write("#{lines.join("\r\n")}\r\n\r\n")
    read_head
  end

  # Reads the body until it contains `text` (event streams) or ends.
  # @return [String] the body read so far
  def read_body_until(text = nil)
    deadline = now + @timeout
    loop do
      body = decoded_body
      return body if text && body.include?(text)
      return body if @eof

      raise "timed out waiting for #{text.inspect}, got #{body.inspect}" if now > deadline

      fill(deadline)
    end
  end

  def close
    @socket.close
  end

  private

  def read_head
    deadline = now + @timeout
    fill(deadline) until @buffer.include?("\r\n\r\n")
    head, @buffer = @buffer.split("\r\n\r\n", 2)
    status_line, *header_lines = head.split("\r\n")
    @headers = header_lines.to_h do |line|
      name, value = line.split(":", 2)
      [name.downcase, value.strip]
    end
    Response.new(Integer(status_line.split[1]), @headers, nil)
  end

  def decoded_body
    return @buffer unless @headers["transfer-encoding"]&.include?("chunked")

    body = +"".b
    rest = @buffer
    while (size_line_end = rest.index("\r\n"))
      size = rest[0, size_line_end].to_i(16)
      chunk_start = size_line_end + 2
      break if rest.bytesize < chunk_start + size + 2

      body << rest.byteslice(chunk_start, size)
      rest = rest.byteslice(chunk_start + size + 2..)
    end
    body
  end

  def fill(deadline)
    remaining = deadline - now
    raise "timed out reading the response" if remaining <= 0
    return unless @socket.wait_readable(remaining)

    @buffer << @socket.readpartial(16_384)
  rescue EOFError
    @eof = true
  end

  def now
    Process.clock_gettime(Process::CLOCK_MONOTONIC)
  end
end
