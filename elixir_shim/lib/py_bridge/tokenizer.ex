defmodule PyBridge.Tokenizer do
  @moduledoc """
  A tokenizer, loaded by the worker from the model's repository.

  Returned by `PyBridge.load_tokenizer/2` and passed to text servings the
  way a `Bumblebee.Text.PreTrainedTokenizer` is. Tokenization itself happens
  in the worker with the model's own `transformers` tokenizer.
  """

  defstruct [:repository, :type]

  @type t :: %__MODULE__{repository: term(), type: atom() | nil}
end
