# frozen_string_literal: true

require "io/nonblock"
require_relative "waiting"

# A command run as a child process that cannot outlive the spec run, with
# its output appended to a log file. Every server the specs start
# (redis-server, redisse, puma, nginx) runs through this class.
#
# The command runs under a shell that sends it SIGTERM as soon as a pipe
# from this process (the lifeline) closes: on #stop, or when the spec run
# dies without cleaning up. The shell exits with the command's status.
class LifelineProcess
  include Waiting

  STOP_TIMEOUT = 10 # seconds

  # fd 3: the lifeline; fd 4: where the shell tells the command's pid.
  LIFELINE_SCRIPT = <<~'SH'
    "$@" 3<&- 4>&- </dev/null &
    child=$!
    echo "$child" >&4
    exec 4>&-
    { read -r _ <&3; kill -TERM "$child" 2>/dev/null; } &
    watcher=$!
    wait "$child"
    status=$?
    kill "$watcher" 2>/dev/null
    exit "$status"
  SH

  attr_reader :name, :log_path, :pid

  # @param name [String] for messages
  # @param command [Array<String>]
  # @param log [String] path of the log file, appended to
  def initialize(name, command, log:, env: {}, chdir: Dir.pwd)
    @name = name
    @command = command
    @log_path = log
    @env = env
    @chdir = chdir
    @owner_pid = Process.pid
  end

  # Starts the command, again after it stopped; `pid` is then the command's
  # own process id.
  # @return [self]
  def start
    raise "#{name} is already running" if running?

    @exit_status = nil

    lifeline_reader, @lifeline = IO.pipe
    pid_reader, pid_writer = IO.pipe
    lifeline_reader.nonblock = false # `read` in sh fails at once on a non-blocking pipe
    @shell_pid = Process.spawn(@env, "sh", "-c", LIFELINE_SCRIPT, "sh", *@command,
                               chdir: @chdir, in: File::NULL, out: [@log_path, "a"], err: [:child, :out],
                               3 => lifeline_reader, 4 => pid_writer, pgroup: true)
    lifeline_reader.close
    pid_writer.close
    raise "#{name}: no pid from its shell" unless pid_reader.wait_readable(STOP_TIMEOUT)

    @pid = Integer(pid_reader.gets, 10)
    self
  ensure
    pid_reader&.close
  end

  def running?
    !@shell_pid.nil? && exit_status.nil?
  end

  # @return [Process::Status, nil] nil while it runs
  def exit_status
    return @exit_status if @exit_status || @shell_pid.nil?

    _pid, @exit_status = Process.wait2(@shell_pid, Process::WNOHANG)
    @exit_status
  rescue Errno::ECHILD
    @exit_status = :reaped_elsewhere
  end

  # Polls the block until it is truthy, failing at once if the command exits.
  def wait_until_ready(what, timeout:, &block)
    wait_until(what, timeout: timeout, interval: 0.02, detail: -> { log_tail }) do
      raise "#{name} exited (#{exit_status.inspect}) while waiting until #{what}\n#{log_tail}" unless running?

      block.call
    end
  end

  def signal(name)
    Process.kill(name, @pid) if running?
  rescue Errno::ESRCH
    nil
  end

  # Waits for the command to exit.
  # @return [Process::Status, nil] nil if it still runs after `timeout` seconds
  def wait_for_exit(timeout:)
    wait_until("#{name} exits", timeout: timeout) { exit_status }
  rescue Waiting::Timeout
    nil
  end

  # SIGTERM (the lifeline closes), and SIGKILL to the whole process group
  # after `timeout` seconds. Safe to call twice; does nothing in a forked
  # child, which does not own the process.
  # @return [Process::Status, nil]
  def stop(timeout: STOP_TIMEOUT)
    return unless @shell_pid && Process.pid == @owner_pid

    @lifeline.close unless @lifeline.closed?
    wait_for_exit(timeout: timeout) || kill
  end

  def log
    File.read(@log_path)
  rescue SystemCallError
    ""
  end

  def log_tail(lines = 30)
    "--- #{name} (#{@log_path})\n#{log.lines.last(lines).join}"
  end

  private

  # SIGKILL to the whole process group: the shell, the command and
  # whatever the command started.
  def kill
    Process.kill("KILL", -@shell_pid)
    _pid, @exit_status = Process.wait2(@shell_pid)
    @exit_status
  rescue Errno::ESRCH, Errno::ECHILD
    exit_status
  end
end
