// SDK clients for the configured region: credentials from the Lambda execution role (the SDK's
// default chain), or fixed dummy ones and an endpoint override for local stand-ins.
'use strict';

const { KinesisClient } = require('@aws-sdk/client-kinesis');
const { DynamoDBClient } = require('@aws-sdk/client-dynamodb');
const { NodeHttpHandler } = require('@smithy/node-http-handler');

function options(config, endpoint) {
  return {
    region: config.region,
    // The handler retries within its own deadline; the SDK's retries would not know about it.
    maxAttempts: 1,
    // HTTP/1.1 (the Kinesis client would default to HTTP/2, which PutRecords does not need and
    // kinesalite does not speak); requests in flight are cut by the handler's deadline signal.
    requestHandler: new NodeHttpHandler({ connectionTimeout: 1000 }),
    ...(endpoint ? { endpoint } : {}),
    ...(config.standInCredentials ? { credentials: { accessKeyId: 'stand-in', secretAccessKey: 'stand-in' } } : {}),
  };
}

/** The Kinesis client the handler writes with. */
function kinesisClient(config) {
  return new KinesisClient(options(config, config.kinesisEndpoint));
}

/** The DynamoDB client of the salt table. */
function dynamoClient(config) {
  return new DynamoDBClient(options(config, config.dynamodbEndpoint));
}

module.exports = { kinesisClient, dynamoClient };
