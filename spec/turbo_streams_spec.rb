# frozen_string_literal: true

# Turbo Streams published as redisse events of type `turboStream`.
RSpec.describe "Redisse.publish_turbo_stream" do
  let(:publisher) { new_redisse }

  it "publishes a <turbo-stream> element as an event, to Redis, in the history of the channel" do
    id = publisher.publish_turbo_stream("room:1", action: :append, target: "messages", html: "<li>Hi</li>")

    expect(redis.zrange("room:1", 0, -1)).to eq [
      event_text(id, '<turbo-stream action="append" target="messages"><template><li>Hi</li></template></turbo-stream>',
                 type: "turboStream")
    ]
  end

  it "has a helper for each common action" do
    publisher.test_mode!
    publisher.turbo_append(:room, target: "list", html: "<li>1</li>")
    publisher.turbo_prepend(:room, target: "list", html: "<li>0</li>")
    publisher.turbo_replace(:room, target: "item_1", html: "<li>one</li>")
    publisher.turbo_update(:room, targets: ".count", html: "2")
    publisher.turbo_remove(:room, target: "item_0")

    expect(publisher.published.map(&:to_a)).to eq [
      [:room, '<turbo-stream action="append" target="list"><template><li>1</li></template></turbo-stream>', :turboStream],
      [:room, '<turbo-stream action="prepend" target="list"><template><li>0</li></template></turbo-stream>', :turboStream],
      [:room, '<turbo-stream action="replace" target="item_1"><template><li>one</li></template></turbo-stream>', :turboStream],
      [:room, '<turbo-stream action="update" targets=".count"><template>2</template></turbo-stream>', :turboStream],
      [:room, '<turbo-stream action="remove" target="item_0"></turbo-stream>', :turboStream]
    ]
  end

  it "escapes the target, keeps the HTML as it is, line breaks included" do
    message = Redisse::TurboStreams.message(action: "replace", target: %(a"b<c), html: "<p>x</p>\n<p>y</p>")

    expect(message).to eq %(<turbo-stream action="replace" target="a&quot;b&lt;c"><template><p>x</p>\n<p>y</p></template></turbo-stream>)
  end

  it "publishes a refresh without target" do
    expect(Redisse::TurboStreams.message(action: :refresh)).to eq '<turbo-stream action="refresh"></turbo-stream>'
  end

  it "refuses an unknown action, and a target missing or given twice" do
    expect { publisher.publish_turbo_stream(:room, action: :explode, target: "x") }
      .to raise_error(Redisse::InvalidTurboStreamError, /unknown Turbo Stream action "explode"/)
    expect { publisher.turbo_append(:room, html: "x") }.to raise_error(Redisse::InvalidTurboStreamError, /target/)
    expect { publisher.turbo_remove(:room, target: "a", targets: ".b") }.to raise_error(Redisse::Error)
    expect(redis.keys("*")).to be_empty
  end
end
