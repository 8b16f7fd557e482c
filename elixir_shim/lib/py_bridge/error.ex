defmodule PyBridge.Error do
  @moduledoc """
  A failure of the model, the worker or the serving, as a value and as an exception.

  Functions that can fail because of the environment return
  `{:error, %PyBridge.Error{}}`; `PyBridge.Serving.batched_run/3` raises it for
  an item the worker rejected. Misuse (bad options, malformed input) raises
  `ArgumentError` instead, in the caller, before anything is sent.

  `:type` is one of the types in `protocols/errors.md`:

    * `:model_not_found` - the repository, directory or file does not exist
    * `:model_load_failed` - the files exist but cannot be loaded
    * `:unsafe_model` - loading would unpickle weights or run remote code
      without the opt-in
    * `:unsupported` - the task cannot run on this model
    * `:bad_input` - the worker rejected an item
    * `:out_of_memory` - the batch did not fit in memory (retryable)
    * `:cancelled` - the request was cancelled before it finished
    * `:timeout` - the caller's deadline passed (retryable)
    * `:overloaded` - the serving's queue is full (retryable)
    * `:worker_crashed` - the worker died holding the request (retryable)
    * `:protocol_error`, `:frame_too_large`, `:protocol_mismatch` - the two
      sides could not understand each other
    * `:internal` - an unexpected exception inside the worker

  `:retryable` says whether the same request may succeed if sent again.
  `:details` carries extra facts, such as the worker's exit status and the
  last lines of its stderr for `:worker_crashed`.
  """

  @types [
    :model_not_found,
    :model_load_failed,
    :unsafe_model,
    :unsupported,
    :bad_input,
    :out_of_memory,
    :cancelled,
    :timeout,
    :overloaded,
    :worker_crashed,
    :protocol_error,
    :frame_too_large,
    :protocol_mismatch,
    :internal
  ]

  @retryable [:out_of_memory, :timeout, :overloaded, :worker_crashed]

  @type type ::
          :model_not_found
          | :model_load_failed
          | :unsafe_model
          | :unsupported
          | :bad_input
          | :out_of_memory
          | :cancelled
          | :timeout
          | :overloaded
          | :worker_crashed
          | :protocol_error
          | :frame_too_large
          | :protocol_mismatch
          | :internal

  @type t :: %__MODULE__{
          type: type(),
          message: String.t(),
          retryable: boolean(),
          python_type: String.t() | nil,
          details: map()
        }

  defexception type: :internal, message: "", retryable: false, python_type: nil, details: %{}

  @doc "Every error type, in the order of `protocols/errors.md`."
  @spec types() :: [type()]
  def types, do: @types

  @doc """
  Builds an error of `type`; `retryable` follows the type unless given.
  """
  @spec new(type(), String.t(), keyword()) :: t()
  def new(type, message, opts \\ []) when type in @types do
    %__MODULE__{
      type: type,
      message: message,
      retryable: Keyword.get(opts, :retryable, type in @retryable),
      python_type: opts[:python_type],
      details: Map.new(Keyword.get(opts, :details, %{}))
    }
  end

  @doc false
  # Translates the protocol's error map; the one place wire errors become structs.
  @spec from_wire(term()) :: t()
  def from_wire(%{type: type, message: message} = map) when type in @types do
    %__MODULE__{
      type: type,
      message: message,
      retryable: Map.get(map, :retryable, type in @retryable),
      python_type: Map.get(map, :python_type)
    }
  end

  def from_wire(other) do
    new(:protocol_error, "the worker sent a malformed error: #{inspect(other, limit: 20)}")
  end

  @impl true
  def message(%__MODULE__{type: type, message: message}), do: "(#{type}) #{message}"
end
