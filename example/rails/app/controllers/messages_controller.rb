# frozen_string_literal: true

# A chat of one room: the page lists the messages that arrive, in every tab,
# as Turbo Streams over redisse.
class MessagesController < ApplicationController
  # Posted from scripts (curl) too in this example.
  skip_forgery_protection

  # GET /messages
  def index; end

  # POST /messages with `text`: appended to #messages in every open page.
  def create
    html = render_to_string(partial: "messages/message", locals: { text: params.require(:text) })
    id = Redisse.turbo_append("messages", target: "messages", html: html)
    render json: { id: id }
  rescue Redisse::ConnectionError => e
    render json: { error: e.message }, status: :service_unavailable
  end
end
