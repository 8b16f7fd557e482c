defmodule PyBridge.Protocol do
  @moduledoc false
  # The shim's half of protocols/PROTOCOL.md: message building and decoding.

  @version 1

  # Every atom the worker may send. Listing them here puts them in this
  # module's atom table, so `binary_to_term(bin, [:safe])` accepts them while
  # still refusing any other atom a broken or hostile worker might invent.
  @known_atoms [
    :ready,
    :reply,
    :chunk,
    :error,
    :log,
    :pong,
    :ok,
    :debug,
    :info,
    :warning,
    :protocol,
    :versions,
    :bridge,
    :python,
    :torch,
    :transformers,
    :device,
    :dtype,
    :task,
    :model,
    :os_pid,
    :logger,
    :type,
    :message,
    :retryable,
    :python_type,
    :architecture,
    :hf_architecture,
    :model_type,
    :id_to_label,
    :max_positions,
    :path,
    :has_tokenizer,
    :has_featurizer,
    :has_generation_config,
    :data,
    :shape,
    :f,
    :s,
    :u,
    :bf,
    :nan,
    :infinity,
    :neg_infinity,
    :embedding,
    :predictions,
    :label,
    :score,
    :entities,
    :start,
    :end,
    :phrase,
    :token,
    :results,
    :text,
    :token_summary,
    :input,
    :output,
    :padding,
    :chunks,
    :start_timestamp_seconds,
    :end_timestamp_seconds,
    :scores,
    :query,
    :document,
    # `bridge featurizer-config` answers %{path:, type:, config:}.
    :config
  ]

  @error_types PyBridge.Error.types()

  @doc false
  @spec version() :: pos_integer()
  def version, do: @version

  @doc false
  @spec known_atoms() :: [atom()]
  # Error types (protocols/errors.md) are included: an error can arrive before
  # anything has loaded PyBridge.Error, whose literals would otherwise create them.
  def known_atoms, do: [PyBridge.Tensor | @known_atoms] ++ @error_types

  @doc false
  @spec encode(term()) :: binary()
  def encode(message), do: :erlang.term_to_binary(message)

  @doc false
  @spec decode(binary()) :: {:ok, term()} | {:error, PyBridge.Error.t()}
  def decode(frame) do
    {:ok, :erlang.binary_to_term(frame, [:safe])}
  rescue
    ArgumentError ->
      {:error,
       PyBridge.Error.new(
         :protocol_error,
         "the worker sent a frame that is not a safe Erlang term (#{byte_size(frame)} bytes)"
       )}
  end

  @doc false
  @spec hello(atom(), map()) :: term()
  def hello(task, options), do: {:hello, %{protocol: @version, task: task, options: options}}
end
