# frozen_string_literal: true

RSpec.describe Redisse::ServerSentEvents do
  def sse(*args, **options)
    described_class.server_sent_event(*args, **options)
  end

  it "writes the data alone by default" do
    expect(sse("hello")).to eq("data: hello\n\n")
  end

  it "writes an empty data line for nil or no data" do
    expect(sse(nil)).to eq("data: \n\n")
    expect(sse).to eq("data: \n\n")
  end

  it "writes retry, id, event and data in that order" do
    expect(sse("hi", type: :notice, id: 42, retry: 1000))
      .to eq("retry: 1000\nid: 42\nevent: notice\ndata: hi\n\n")
  end

  it "writes only the fields given" do
    expect(sse("hi", id: 7)).to eq("id: 7\ndata: hi\n\n")
    expect(sse("hi", type: "notice")).to eq("event: notice\ndata: hi\n\n")
    expect(sse("hi", retry: 5)).to eq("retry: 5\ndata: hi\n\n")
  end

  it "starts a data line at every line break" do
    expect(sse("a\nb\n")).to eq("data: a\ndata: b\ndata: \n\n")
    expect(sse("a\rb")).to eq("data: a\ndata: b\n\n")
    expect(sse("a\r\nb")).to eq("data: a\ndata: b\n\n")
    expect(sse("a\n\rb")).to eq("data: a\ndata: \ndata: b\n\n")
  end

  it "converts the data with String()" do
    expect(sse(42, type: :count)).to eq("event: count\ndata: 42\n\n")
  end

  it "keeps the bytes of the data" do
    expect(sse("\xFF\xC3\xA9".b).b).to eq("data: \xFF\xC3\xA9\n\n".b)
  end

  it "refuses CR or LF in the type, the id and the retry" do
    expect { sse("x", type: "a\nb") }.to raise_error(Redisse::InvalidEventError)
    expect { sse("x", type: "a\rb") }.to raise_error(Redisse::InvalidEventError)
    expect { sse("x", id: "1\n2") }.to raise_error(Redisse::InvalidEventError)
    expect { sse("x", retry: "1\r") }.to raise_error(Redisse::InvalidEventError)
  end

  it "is available to classes that include the module" do
    writer = Class.new do
      include Redisse::ServerSentEvents

      def event
        server_sent_event("hi", id: 1)
      end
    end

    expect(writer.new.event).to eq("id: 1\ndata: hi\n\n")
  end

  it "works with only redisse/server_sent_events required, as in 0.4" do
    lib = File.expand_path("../lib", __dir__)
    script = 'require "redisse/server_sent_events"; ' \
             'print Redisse::ServerSentEvents.server_sent_event("hi", type: :notice, id: 3)'
    output = IO.popen([RbConfig.ruby, "-I", lib, "-e", script], err: %i[child out], &:read)

    expect(Process.last_status).to be_success, output
    expect(output).to eq("id: 3\nevent: notice\ndata: hi\n\n")
  end
end
