# frozen_string_literal: true

require "socket"
require_relative "waiting"

# The specs' HTTP/1.1 client, over a raw TCP socket: it reads a response as
# it arrives, the status line and headers, then the body (chunked, sized, or
# until the connection closes), parsed incrementally into Server-Sent
# Events. For event streams (from the redisse server, or through nginx),
# and, with `SseReader.fetch`, for plain GETs (stats, readiness probes).
# Every wait is bounded by a deadline; none sleeps for a fixed time: it
# waits on the socket.
#
# @example
#   reader = SseReader.new(port, "/?global", "Last-Event-Id" => "12")
#   reader.read_head
#   reader.wait_for_events(3, timeout: 2).map(&:id) # => ["13", "14", "15"]
class SseReader
  include Waiting

  # One event. `raw` is its text on the wire (field lines and the empty
  # line that ends it, comments left out); `at` is when it was parsed.
  Event = Struct.new(:id, :type, :data, :raw, :at, keyword_init: true) do
    def id_i
      id && Integer(id, 10)
    end
  end

  class Timeout < Waiting::Timeout; end

  DEFAULT_TIMEOUT = 5
  READ_SIZE = 256 * 1024

  # A whole response to a GET (only its head with `head_only`: for event
  # streams), the connection closed; nil when nothing answers on the port or
  # the response does not come within `timeout`.
  # @return [SseReader, nil]
  def self.fetch(port, path, headers = {}, timeout: 2, head_only: false)
    reader = new(port, path, headers, connect_timeout: timeout)
    head_only ? reader.read_head(timeout: timeout) : reader.wait_until_finished(timeout: timeout)
  rescue SystemCallError, IOError, Timeout
    nil
  ensure
    reader&.close
  end

  attr_reader :status, :reason, :headers, :events, :comments, :body, :closed_at

  # @param port [Integer] the server's port on 127.0.0.1
  # @param path [String] the request target, e.g. "/?a&b"
  # @param headers [Hash] request headers; `Accept: text/event-stream` unless given
  # @param rcvbuf [Integer, nil] SO_RCVBUF for the socket, set before connecting
  def initialize(port, path = "/", headers = {}, rcvbuf: nil, connect_timeout: DEFAULT_TIMEOUT)
    @socket = connect(port, rcvbuf, connect_timeout)
    @raw = +"".b          # bytes received and not yet decoded
    @body = +"".b         # the decoded body
    @parse_pos = 0        # where event parsing is in @body
    @events = []
    @comments = []
    @pending_lines = []   # the field lines of the event being read
    @eof = false
    @terminated = false   # the chunked body's last chunk was read
    send_request(port, path, headers)
  end

  # Reads the status line and headers.
  # @return [self]
  def read_head(timeout: DEFAULT_TIMEOUT)
    wait_for("the response head", timeout: timeout) { @status }
    self
  end

  def chunked?
    @headers&.fetch("transfer-encoding", "")&.downcase&.include?("chunked")
  end

  # The body ended: the chunked terminator, the whole Content-Length, or
  # the connection closed.
  def finished?
    @terminated || @eof || content_complete?
  end

  # The chunked body ended with its terminator `0\r\n\r\n`.
  def terminated?
    @terminated
  end

  # The server closed the connection.
  def eof?
    @eof
  end

  # Reads what has arrived, without waiting.
  # @return [self]
  def pump
    read_available(0)
    self
  end

  # Waits until `n` events have arrived.
  # @return [Array<Event>] the first `n` events
  def wait_for_events(count, timeout: DEFAULT_TIMEOUT)
    wait_for("#{count} event(s)", timeout: timeout) { @events.size >= count }
    @events.first(count)
  end

  # Waits until the block, given the reader, is truthy, reading what
  # arrives meanwhile: it blocks on the socket rather than polling.
  def wait_for(what, timeout: DEFAULT_TIMEOUT)
    deadline = monotonic_now + timeout
    loop do
      result = yield(self)
      return result if result
      raise Timeout, "timed out after #{timeout}s waiting for #{what}; #{describe}" if @eof || monotonic_now >= deadline

      read_available(deadline - monotonic_now)
    end
  end

  # Waits until the body ends (see #finished?).
  # @return [self]
  def wait_until_finished(timeout: DEFAULT_TIMEOUT)
    wait_for("the end of the response", timeout: timeout) { finished? }
    self
  end

  # Reads for `seconds` (or until the body ends); to check that something
  # does NOT happen within that time.
  # @return [self]
  def read_for(seconds)
    deadline = monotonic_now + seconds
    read_available(deadline - monotonic_now) while !finished? && monotonic_now < deadline
    self
  end

  # The body without its comment lines: what the stream said, wherever its
  # heartbeats fell (the specs' servers beat every 0.2 s).
  def body_without_comments
    @body.each_line.reject { |line| line.start_with?(":") }.join
  end

  def close
    @socket.close unless @socket.closed?
  end

  def closed_socket?
    @socket.closed?
  end

  def describe
    "status=#{@status.inspect} events=#{@events.size} eof=#{@eof} terminated=#{@terminated} " \
      "body(last 300 bytes)=#{@body.byteslice([@body.bytesize - 300, 0].max, 300).inspect}"
  end

  private

  def connect(port, rcvbuf, timeout)
    socket = Socket.new(:INET, :STREAM)
    # Before connecting, so that the TCP window is negotiated with it.
    socket.setsockopt(Socket::SOL_SOCKET, Socket::SO_RCVBUF, rcvbuf) if rcvbuf
    address = Socket.sockaddr_in(port, "127.0.0.1")
    begin
      socket.connect_nonblock(address)
    rescue IO::WaitWritable
      raise Timeout, "cannot connect to port #{port}" unless socket.wait_writable(timeout)

      begin
        socket.connect_nonblock(address)
      rescue Errno::EISCONN
        nil
      end
    end
    socket
  rescue StandardError
    socket&.close
    raise
  end

  def send_request(port, path, headers)
    headers = { "Accept" => "text/event-stream" }.merge(headers)
    lines = ["GET #{path} HTTP/1.1", "Host: 127.0.0.1:#{port}"]
    headers.each { |name, value| lines << "#{name}: #{value}" unless value.nil? }
    @socket.write("#{lines.join("\r\n")}\r\n\r\n")
  end

  # Waits up to `timeout` seconds for bytes, then decodes what came.
  def read_available(timeout)
    return if @eof

    loop do
      data = @socket.read_nonblock(READ_SIZE, exception: false)
      case data
      when :wait_readable
        break if timeout <= 0 || !@socket.wait_readable(timeout)
      when nil
        mark_eof
        break
      else
        @raw << data
        break if @raw.bytesize >= 4 * READ_SIZE

        timeout = 0 # take what else is there, without waiting
      end
    end
    decode
  rescue Errno::ECONNRESET, Errno::EPIPE, IOError
    mark_eof
    decode
  end

  def mark_eof
    @eof = true
    @closed_at ||= monotonic_now
  end

  def decode
    parse_head unless @status
    return unless @status

    if chunked?
      decode_chunks
    else
      @body << @raw
      @raw = +"".b
    end
    @closed_at ||= monotonic_now if finished?
    parse_events
  end

  def parse_head
    head_end = @raw.index("\r\n\r\n")
    return unless head_end

    status_line, *header_lines = @raw.byteslice(0, head_end).split("\r\n")
    @raw = @raw.byteslice(head_end + 4..)
    _version, code, @reason = status_line.split(" ", 3)
    @status = Integer(code, 10)
    @headers = {}
    header_lines.each do |line|
      name, value = line.split(":", 2)
      @headers[name.strip.downcase] = value.to_s.strip
    end
  end

  def content_complete?
    return false unless @headers && !chunked? && @headers["content-length"]

    @body.bytesize >= Integer(@headers["content-length"], 10)
  end

  def decode_chunks
    pos = 0
    until @terminated
      line_end = @raw.index("\r\n", pos)
      break unless line_end

      size = Integer(@raw.byteslice(pos, line_end - pos).split(";", 2).first.strip, 16)
      data_start = line_end + 2
      if size.zero?
        @terminated = true
        pos = data_start
        break
      end
      break if @raw.bytesize < data_start + size + 2

      @body << @raw.byteslice(data_start, size)
      raise "bad chunk ending: #{@raw.byteslice(data_start + size, 2).inspect}" unless @raw.byteslice(data_start + size, 2) == "\r\n"

      pos = data_start + size + 2
    end
    @raw = @raw.byteslice(pos..) if pos.positive?
  end

  # Server-Sent Events: lines ending with LF (CR LF and CR are accepted
  # too); an empty line dispatches the event; lines starting with `:` are
  # comments.
  def parse_events
    while (line_end = @body.index("\n", @parse_pos))
      line = @body.byteslice(@parse_pos, line_end - @parse_pos)
      @parse_pos = line_end + 1
      line = line.chomp("\r")
      if line.empty?
        dispatch_event
      elsif line.start_with?(":")
        @comments << line.delete_prefix(":").strip
      else
        @pending_lines << line
      end
    end
  end

  def dispatch_event
    return if @pending_lines.empty?

    fields = { id: nil, type: nil, data: nil }
    @pending_lines.each do |line|
      name, value = line.split(":", 2)
      value = value.to_s.delete_prefix(" ")
      case name
      when "id" then fields[:id] = value
      when "event" then fields[:type] = value
      when "data" then fields[:data] = fields[:data] ? "#{fields[:data]}\n#{value}" : value
      end
    end
    raw = "#{@pending_lines.join("\n")}\n\n".b
    @events << Event.new(**fields, raw: raw, at: monotonic_now)
    @pending_lines = []
  end
end
