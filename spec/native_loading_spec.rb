# frozen_string_literal: true

require "fileutils"
require "rbconfig"
require "tmpdir"

# Where lib/redisse/native.rb finds the extension: the Ruby-ABI folder of a
# platform gem first, then the one built in place (or by the source gem's
# install), else a LoadError that says what to install. Each example loads
# a copy of lib/ in a Ruby of its own.
RSpec.describe "Loading the native extension" do
  let(:lib) { File.expand_path("../lib", __dir__) }
  let(:extension) { "redisse.#{RbConfig::CONFIG['DLEXT']}" }
  let(:abi) { RUBY_VERSION[/\A\d+\.\d+/] }

  around do |example|
    Dir.mktmpdir("redisse-lib") do |dir|
      @copy = File.join(dir, "lib")
      FileUtils.cp_r(lib, @copy)
      FileUtils.rm_f(File.join(@copy, "redisse", extension))
      example.run
    end
  end

  # Requires `feature` from the copy, in another folder, with no other
  # redisse on the load path; prints the extension file loaded.
  def load_copy(feature = "redisse")
    script = "require #{feature.inspect}; print $LOADED_FEATURES.grep(/#{Regexp.escape(extension)}/).join(',')"
    run_command(RbConfig.ruby, "-I", @copy, "-e", script, env: { "RUBYLIB" => nil, "RUBYOPT" => nil },
                                                                 chdir: File.dirname(@copy), timeout: 60)
  end

  def place(folder)
    FileUtils.mkdir_p(folder)
    FileUtils.cp(File.join(lib, "redisse", extension), folder)
    File.join(folder, extension)
  end

  it "loads the build for the running Ruby's ABI, as a platform gem holds it" do
    precompiled = place(File.join(@copy, "redisse", abi))
    place(File.join(@copy, "redisse")) # a build in place comes second

    output, status = load_copy
    expect(status).to be_success, output
    expect(output).to eq precompiled
  end

  it "loads the one built in place when there is none for the ABI" do
    place(File.join(@copy, "redisse", "0.9")) # another Ruby's
    in_place = place(File.join(@copy, "redisse"))

    output, status = load_copy("redisse/server_sent_events")
    expect(status).to be_success, output
    expect(output).to eq in_place
  end

  it "says what to install when there is neither" do
    output, status = load_copy
    expect(status).not_to be_success
    expect(output).to include("LoadError", "no native extension for Ruby #{abi}",
                              "gem install redisse --platform x86_64-linux",
                              "gem install redisse --platform ruby", "https://rustup.rs", "libclang-dev",
                              "rake compile")
  end

  it "names the Rubies a platform gem holds builds for, when this one is not among them" do
    place(File.join(@copy, "redisse", "0.8"))
    place(File.join(@copy, "redisse", "0.9"))

    output, status = load_copy
    expect(status).not_to be_success
    expect(output).to include("LoadError", "no native extension for Ruby #{abi}",
                              "This redisse gem holds builds for Ruby 0.8 and 0.9 only",
                              "gem install redisse --platform ruby", "force_ruby_platform")
  end

  it "shows why a build for the ABI that is there does not load" do
    File.write(File.join(FileUtils.mkdir_p(File.join(@copy, "redisse", abi)).first, extension), "not a library")

    output, status = load_copy
    expect(status).not_to be_success
    expect(output).to include(File.join(@copy, "redisse", abi, extension))
    expect(output).not_to include("no native extension")
  end
end
