defmodule PyBridge.Shared do
  @moduledoc false
  # Validation and result shaping shared by every serving, following
  # Bumblebee's rules: a list is a batch, anything else one item; bad input
  # raises ArgumentError in the caller, worded as Bumblebee words it.

  @doc false
  # Turns a caller's input into {items, multi?}, validating each item.
  @spec batch!(term(), (term() -> {:ok, term()} | {:error, String.t()})) :: {[term()], boolean()}
  def batch!(input, validate) when is_list(input) do
    if input == [] do
      raise ArgumentError, "invalid input, expected a non-empty list of inputs, got: []"
    end

    # A charlist is a list of integers, so it would read as a batch of
    # numbers; say what it is instead.
    if :io_lib.printable_unicode_list(input) do
      raise ArgumentError,
            "invalid input, expected a string (in double quotes), got a charlist: ~c#{inspect(List.to_string(input))}"
    end

    items =
      Enum.map(input, fn item ->
        case validate.(item) do
          {:ok, item} -> item
          {:error, message} -> raise ArgumentError, "invalid input in the batch, #{message}"
        end
      end)

    {items, true}
  end

  def batch!(input, validate) do
    case validate.(input) do
      {:ok, item} -> {[item], false}
      {:error, message} -> raise ArgumentError, "invalid input, #{message}"
    end
  end

  @doc false
  # The serving most tasks build: `options` for the worker, the compiled batch
  # size, each item checked in the caller by `validate`, and Bumblebee's rule
  # that a list input gives a list of results.
  @spec serving(
          map(),
          atom(),
          map(),
          keyword() | nil,
          (term() -> {:ok, term()} | {:error, String.t()})
        ) ::
          PyBridge.Serving.t()
  def serving(model_info, task, options, compile, validate) do
    model_info.model
    |> PyBridge.Serving.new(task, options)
    |> PyBridge.Serving.batch_size(compile[:batch_size])
    |> PyBridge.Serving.client_preprocessing(&batch!(&1, validate))
    |> PyBridge.Serving.client_postprocessing(fn {results, multi?} ->
      normalize_output(results, multi?)
    end)
  end

  @doc false
  @spec normalize_output([term()], boolean()) :: term()
  def normalize_output(outputs, true), do: outputs
  def normalize_output([output], false), do: output

  @doc false
  @spec validate_text(term()) :: {:ok, String.t()} | {:error, String.t()}
  def validate_text(text) when is_binary(text) do
    if String.valid?(text),
      do: {:ok, text},
      else:
        {:error,
         "expected a valid UTF-8 string, got a binary that is not: #{inspect(text, limit: 20)}"}
  end

  def validate_text(other), do: {:error, "expected a string, got: #{inspect(other, limit: 20)}"}

  @doc false
  # Options are checked at the door, like Bumblebee's Keyword.validate!/2.
  @spec validate_options!(keyword(), keyword() | [atom()]) :: keyword()
  def validate_options!(opts, allowed) when is_list(opts), do: Keyword.validate!(opts, allowed)

  @doc false
  # Bumblebee's :compile: text servings need both keys, others batch_size only.
  @spec compile!(keyword() | nil, [atom()]) :: keyword() | nil
  def compile!(nil, _required), do: nil

  def compile!(compile, required) when is_list(compile) do
    compile = Keyword.validate!(compile, required)

    case required -- Keyword.keys(compile) do
      [] ->
        compile

      missing ->
        raise ArgumentError, "missing keys #{inspect(missing)} in keyword list (:compile)"
    end
  end

  def compile!(other, _required),
    do: raise(ArgumentError, "expected :compile to be a keyword list, got: #{inspect(other)}")

  @doc false
  @spec require_architecture!(map(), [atom()]) :: :ok
  def require_architecture!(%{spec: %{architecture: architecture}}, allowed) do
    unless architecture in allowed do
      raise ArgumentError,
            "expected a model with architecture #{Enum.map_join(allowed, " or ", &inspect/1)}, " <>
              "got #{inspect(architecture)}"
    end

    :ok
  end

  @doc false
  @spec one_of!(term(), [term()], atom()) :: term()
  def one_of!(value, allowed, option) do
    unless value in allowed do
      raise ArgumentError,
            "expected #{inspect(option)} to be one of #{Enum.map_join(allowed, ", ", &inspect/1)}, got: #{inspect(value)}"
    end

    value
  end

  @doc false
  @spec sequence_length(keyword() | nil) :: pos_integer() | [pos_integer()] | nil
  def sequence_length(nil), do: nil
  def sequence_length(compile), do: compile[:sequence_length]

  @doc false
  @spec positive_integer!(term(), atom()) :: pos_integer()
  def positive_integer!(value, option) do
    unless is_integer(value) and value > 0 do
      raise ArgumentError,
            "expected #{inspect(option)} to be a positive integer, got: #{inspect(value)}"
    end

    value
  end

  @doc false
  @spec string_list!(term(), String.t()) :: [String.t()]
  def string_list!(value, what) do
    unless is_list(value) and Enum.all?(value, &(is_binary(&1) and String.valid?(&1))) do
      raise ArgumentError, "expected #{what} to be a list of strings, got: #{inspect(value)}"
    end

    value
  end
end
