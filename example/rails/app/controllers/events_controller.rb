# frozen_string_literal: true

class EventsController < ActionController::Base
  PRIVATE_CHANNELS = %w[private_1 private_2 private_3 private_4].freeze

  # Publishing is open to scripts (curl) in this example.
  skip_forgery_protection

  rescue_from ActionController::ParameterMissing do |error|
    render json: { error: error.message }, status: :bad_request
  end

  # GET / gives the session a private channel and lists its channels.
  def index
    session[:channel] = PRIVATE_CHANNELS.sample unless PRIVATE_CHANNELS.include?(session[:channel])
    render json: { channels: Redisse.channels(request.env) }
  end

  # POST /publish with `channel` and `message`.
  def publish
    id = Redisse.publish(params.require(:channel), params[:message].to_s)
    render json: { id: id }
  rescue Redisse::ConnectionError => e
    render json: { error: e.message }, status: :service_unavailable
  end
end
